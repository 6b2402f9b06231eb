"""``ingresslib serve``'s lifecycle as an operator runs it (session 16 review).

1. Start-up and reload errors: every error at once (a folder that cannot be listed no longer
   hides the files' own errors; an invalid ``--config`` no longer hides the manifests', nor
   the manifests a reload's invalid ConfigMap), with the unknown fields that explain them.
2. SIGHUP while ``serve`` starts (reading the files, opening the listeners, the first digest)
   is kept and read once the reloader runs, not fatal and not dropped; Ctrl-C while the files
   are read is one line, not a traceback.
3. Listeners: two options on one address are refused before anything listens (exit 2); a bind
   that fails names its option; a host name the resolver cannot even encode is exit 2, not a
   UnicodeError traceback.
4. What ``check`` warns of a table that builds (shadowed rules, Ingresses the class filter
   leaves out, ignored annotation values, no Ingress at all) is in ``serve``'s log, each line
   once, at start, on reloads and from the cluster.
5. Invalid manifests keep the last good table without holding back a valid ConfigMap edit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ingresslib import _serve
from ingresslib._cli import main
from ingresslib._resources import Resources
from ingresslib._serve import Reloader, build_router
from tests._process_helpers import stderr_until_exit
from tests.test_serve_cli import _bump, _configmap, _manifests, _start_serve, _stop
from tests.test_serve_s13 import _deny, _ingress

from _serve_helpers import free_port, signal_serve_after, stop_at_first_reload

BAD_INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: "UPPER.test"
    http:
      paths:
      - {path: "no-slash", pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


async def _never_serve(*a: Any, **k: Any) -> int:
    return 99  # reached only when start-up accepted the input


# -- every error at once --------------------------------------------------------------------------


def test_start_up_with_a_folder_that_cannot_be_listed_reports_the_other_errors_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: an unreadable folder was refused on its own before the files were read, so the
    # other files' errors (which `check` lists with it) came one restart later.
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text(_ingress("a"))
    (tmp_path / "bad.yaml").write_text(BAD_INGRESS)
    monkeypatch.setattr(_serve, "_serve", _never_serve)
    _deny(monkeypatch, sub)
    assert main(["serve", "-f", str(tmp_path), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert f"{sub}: Invalid value: cannot list the folder: Permission denied" in err
    assert "spec.rules[0].host" in err and "spec.rules[0].http.paths[0].path" in err


@pytest.mark.asyncio
async def test_a_reload_with_a_folder_that_cannot_be_listed_logs_the_other_errors_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text(_ingress("a"))
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("m", "m.test"))

    r = _reloader(_SettingsServer(Resources()), [tmp_path])
    _bump(m, BAD_INGRESS)
    _deny(monkeypatch, sub)
    assert await r.check() is False
    error = r.last_error or ""
    assert "cannot list the folder" in error and "spec.rules[0].host" in error
    monkeypatch.undo()
    _bump(m, _ingress("m", "m.test"))
    assert await r.check() is True
    assert sorted(i.metadata.name for i in r.last_resources.ingresses) == ["a", "m"]  # type: ignore[union-attr]


def test_an_invalid_configmap_and_invalid_manifests_are_reported_together(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: the ConfigMap was read first and its error ended start-up; the manifests' errors
    # were not read until it was fixed.
    m = tmp_path / "m.yaml"
    m.write_text(BAD_INGRESS)
    cm = tmp_path / "cm.yaml"
    cm.write_text(_configmap("big"))
    monkeypatch.setattr(_serve, "_serve", _never_serve)
    assert main(["serve", "-f", str(m), "--config", str(cm), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "data.proxy-body-size" in err and "spec.rules[0].host" in err
    assert "listening on" not in err


TYPO = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /, pathtype: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""
TYPO_WARNING = 'Ingress default/web: unknown field "spec.rules[0].http.paths[0].pathtype"'


def test_a_refused_start_names_the_unknown_fields_that_explain_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: `check` prints the unknown field a typo made next to the error it causes
    # ("pathType: Required value" for `pathtype`); serve printed the error alone.
    m = tmp_path / "m.yaml"
    m.write_text(TYPO)
    monkeypatch.setattr(_serve, "_serve", _never_serve)
    assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "pathType: Required value" in err and f"warning: {m}: {TYPO_WARNING}" in err


@pytest.mark.asyncio
async def test_a_refused_reload_logs_the_unknown_fields_that_explain_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    r = _reloader(_SettingsServer(Resources()), [m])
    _bump(m, TYPO)
    with caplog.at_level(logging.ERROR, logger="ingresslib.serve"):
        assert await r.check() is False
    assert "pathType: Required value" in caplog.text and TYPO_WARNING in caplog.text


# -- signals while starting ------------------------------------------------------------------------


def test_sighup_during_the_first_digest_is_read_once_the_reloader_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: a SIGHUP between the listeners opening and the reloader's creation (the first
    # digest runs then: 0.3 s at 10,000 Ingresses) was logged as "nothing to read (the cluster
    # is watched); ignored" and dropped: with --reload-interval 0 the edit it announced was
    # not read until the next SIGHUP.
    assert threading.current_thread() is threading.main_thread()  # serve's handlers need it
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("alpha", [1]))
    real_digest = _serve.config_digest
    calls: list[int] = []

    def digest_then_edit(*a: Any, **k: Any) -> str:
        if not calls:  # the first digest, in a worker thread while the loop runs
            _bump(m, _manifests("beta", [1]))
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.3)  # the loop's handler runs meanwhile
        calls.append(1)
        return real_digest(*a, **k)

    monkeypatch.setattr(_serve, "config_digest", digest_then_edit)
    seen = stop_at_first_reload(monkeypatch)
    signal_serve_after(monkeypatch, 3)
    assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0", "--reload-interval", "0",
                 "--access-log", "off"]) == 0
    assert seen == [["beta"]]
    assert "the cluster is watched" not in capsys.readouterr().err


HUP_WHILE_LOADING = """\
import os, signal, sys, time
from pathlib import Path
import ingresslib._load as load
real = load.load_manifests
def load_then_hup(*paths):
    res = real(*paths)
    if not getattr(load_then_hup, "done", False):
        load_then_hup.done = True
        m = Path(paths[0])
        m.write_text(m.read_text().replace("app.test", "other.test"))
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.1)
    return res
load.load_manifests = load_then_hup
from ingresslib._cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def _status(port: int, host: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return int(c.makefile("rb").readline().split()[1])


def test_sighup_while_the_files_are_read_does_not_kill_serve(tmp_path: Path) -> None:
    # Defect: until the event loop installed its handler, SIGHUP had its default action: a
    # `kill -HUP` after an edit while serve read a large set of files ended it (-1, nothing
    # said). Now it is remembered and the files are read again once serving, even with
    # polling off.
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("web", "app.test"))
    p = subprocess.Popen([sys.executable, "-c", HUP_WHILE_LOADING, "serve", "-f", str(m),
                          "--listen", "127.0.0.1:0", "--reload-interval", "0",
                          "--access-log", "off"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None
        line = p.stderr.readline()  # "listening on ...", or "" when the signal killed it
        assert line.startswith("listening on "), (line, p.wait(10))
        port = int(line.rsplit(":", 1)[1])
        for _ in range(100):  # the forced read happens just after "listening on"
            if _status(port, "other.test") != 404:
                break
            time.sleep(0.05)
        assert _status(port, "other.test") == 503  # routed (no Service in the files)
        assert _status(port, "app.test") == 404
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        err = stderr_until_exit(p, 30)  # not communicate(): it drops what readline() buffered
    assert p.returncode == 0 and "Traceback" not in err


def test_ctrl_c_while_the_files_are_read_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: a Ctrl-C while a large set of manifests loaded printed a KeyboardInterrupt
    # traceback from inside the YAML parser.
    import ingresslib._load

    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))

    def interrupted(*paths: str) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(ingresslib._load, "load_manifests", interrupted)
    try:
        code = main(["serve", "-f", str(m), "--listen", "127.0.0.1:0"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped serve (a traceback for the operator)")
    assert code == 130
    err = capsys.readouterr().err
    assert err == "ingresslib serve: interrupted before serving\n"


# -- listeners ------------------------------------------------------------------------------------


@pytest.mark.parametrize("first, second", [
    ("--listen 127.0.0.1:{p}", "--metrics-listen 127.0.0.1:{p}"),
    ("--listen 127.0.0.1:{p}", "--tls-listen 127.0.0.1:{p}"),
    ("--tls-listen 127.0.0.1:{p}", "--metrics-listen 127.0.0.1:{p}"),
    ("--listen :{p}", "--metrics-listen 127.0.0.1:{p}"),  # 0.0.0.0 takes the port everywhere
    ("--listen [::1]:{p}", "--tls-listen [::]:{p}"),
])
def test_two_listeners_on_one_address_are_refused_before_listening(
        first: str, second: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: `--metrics-listen` on `--listen`'s address bound the proxy, then failed on the
    # metrics listener with "cannot listen: ... address already in use" (exit 1), naming
    # neither option: the port looked taken by another process. An input error: exit 2.
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    p = free_port()
    argv = ["serve", "-f", str(m), *first.format(p=p).split(), *second.format(p=p).split()]
    if "--listen" not in argv:
        argv += ["--listen", "127.0.0.1:0"]
    monkeypatch.setattr(_serve, "_serve", _never_serve)  # nothing listens in this test
    assert main(argv) == 2
    err = capsys.readouterr().err
    flag_a, flag_b = first.split()[0], second.split()[0]
    assert err.count("\n") == 1 and flag_a in err and flag_b in err and str(p) in err


def test_different_ports_or_hosts_are_not_a_conflict(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    p = free_port()
    monkeypatch.setattr(_serve, "_serve", _never_serve)
    for extra in (["--metrics-listen", f"127.0.0.1:{p + 1}"], ["--metrics-listen", f"127.0.0.2:{p}"],
                  ["--tls-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
                  # asyncio listens on :: with IPV6_V6ONLY: IPv4 addresses keep the port
                  ["--tls-listen", f"[::]:{p}"]):
        assert main(["serve", "-f", str(m), "--listen", f"127.0.0.1:{p}", *extra]) == 99


@pytest.mark.parametrize("option", ["--listen", "--tls-listen", "--metrics-listen"])
def test_a_listener_that_cannot_bind_is_named(option: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: "cannot listen: [Errno 98] ... address already in use" did not say which of the
    # three listeners it was.
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    argv = ["serve", "-f", str(m), "--reload-interval", "0", "--access-log", "off"]
    for o in ("--listen", "--tls-listen", "--metrics-listen"):
        if o != option:
            argv += [o, "127.0.0.1:0"]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main([*argv, option, f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"ingresslib serve: {option} 127.0.0.1:{port}: cannot listen: " in err
    assert "address already in use" in err and "listening on" not in err


def test_a_host_that_does_not_resolve_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # No lookup leaves the machine: the resolver is replaced for this name.
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *a: Any, **k: Any) -> Any:
        if host == "nosuch.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    assert main(["serve", "-f", str(m), "--listen", "nosuch.invalid:0",
                 "--reload-interval", "0"]) == 1
    err = capsys.readouterr().err
    assert "ingresslib serve: --listen nosuch.invalid:0: cannot listen: " in err
    assert "Name or service not known" in err and "Traceback" not in err


@pytest.mark.parametrize("host", ["a..b", "a" * 64, ".x"])
def test_a_host_name_the_resolver_cannot_encode_is_exit_2(
        host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Defect: such a name passed the HOST:PORT check and reached the resolver at the bind,
    # which raised UnicodeError ("label empty or too long"): a traceback, exit 1.
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    assert main(["serve", "-f", str(m), "--listen", f"{host}:0", "--reload-interval", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ingresslib serve: --listen ") and err.count("\n") == 1
    assert "not a host name" in err


# -- what check warns, in serve's log -------------------------------------------------------------

CANARY = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  annotations: {nginx.ingress.kubernetes.io/canary: "maybe"}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web2, port: {number: 80}}}}
"""

SHADOWED = "WARNING ingresslib.serve: Ingress default/web-canary: spec.rules[0].http.paths[0]: " \
           "Prefix '/' on host app.test is shadowed by Ingress default/web"
IGNORED = ("WARNING ingresslib.serve: Ingress default/web-canary: metadata.annotations"
           "[nginx.ingress.kubernetes.io/canary]: invalid boolean 'maybe'")


def _serve_log(*args: str) -> str:
    p, _ = _start_serve(*args, "--listen", "127.0.0.1:0", "--reload-interval", "0",
                        "--access-log", "off")
    return _stop(p)


def test_serve_logs_what_check_warns_at_start_up(tmp_path: Path) -> None:
    # Defect: serve logged none of it: the router's warnings went to the debug level, the
    # table's diagnostics nowhere. A canary Ingress whose `canary` value is ignored served as
    # a shadowed plain Ingress (its backend never reached), an Ingress the class filter left
    # out answered 404, an empty folder served nothing: all without a word.
    m = tmp_path / "m.yaml"
    m.write_text(CANARY)
    err = _serve_log("-f", str(m))
    assert SHADOWED in err and IGNORED in err and "warning: warning" not in err.lower()
    err = _serve_log("-f", str(m), "--ingress-class", "nginx")
    # Session 18: every Ingress left out is a WARNING (it was INFO), with one line saying so.
    assert ("WARNING ingresslib.serve: Ingress default/web: spec.ingressClassName: names no "
            "class and no matching IngressClass is the default; not served") in err
    assert "every request answers 404" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _serve_log("-f", str(empty))
    assert (f"WARNING ingresslib.serve: no Ingress in {empty} (folders are searched for "
            "*.yaml, *.yml and *.json files)") in err


@pytest.mark.asyncio
async def test_a_reload_logs_new_table_warnings_once(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("web", "app.test"))

    r = _reloader(_SettingsServer(Resources()), [m])

    def logged() -> list[str]:
        lines = [rec.getMessage() for rec in caplog.records if rec.name == "ingresslib.serve"
                 and rec.levelno == logging.WARNING]
        caplog.clear()
        return lines

    with caplog.at_level(logging.INFO, logger="ingresslib.serve"):
        _bump(m, CANARY)
        assert await r.check() is True
        first = logged()
        assert any("is shadowed by" in x for x in first)
        assert any("invalid boolean 'maybe'" in x for x in first)
        _bump(m, CANARY + "\n")  # the same table: nothing new to say
        assert await r.check() is True
        assert logged() == []
        _bump(m, "")  # nothing left
        assert await r.check() is True
        assert logged() == [f"no Ingress in {m}"]
        _bump(m, CANARY)  # the warnings come back: said again
        assert await r.check() is True
        assert sorted(logged()) == sorted(first)


# -- the ConfigMap and the manifests, each on its own -----------------------------------------------


class _SettingsServer:
    """What the reloader drives: a real router, and the settings it assigns."""

    def __init__(self, res: Any) -> None:
        self.router = build_router(res, ingress_class=None, controller=None)
        self.cert_store = None
        self.settings: Any = None


def _reloader(server: Any, paths: list[Path], **kw: Any) -> Reloader:
    """The Reloader of ``paths`` for ``server``: no class filter, no settle delay."""
    return Reloader(server, [str(p) for p in paths], ingress_class=None, controller=None,
                    settle=0, **kw)


def _with_configmap(tmp_path: Path, **kw: Any) -> tuple[Path, Path, _SettingsServer, Reloader]:
    """m.yaml (Ingress "a", a.test) and cm.yaml (proxy-body-size 5), served: the manifest,
    the ConfigMap, the server and its Reloader of both (``kw``: more Reloader arguments)."""
    from ingresslib import load_manifests
    from ingresslib._config import load_config

    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a", "a.test"))
    cm = tmp_path / "cm.yaml"
    cm.write_text(_configmap("5"))
    server = _SettingsServer(load_manifests(str(m)))
    return m, cm, server, _reloader(server, [m], config=load_config(cm), config_path=str(cm),
                                    **kw)


@pytest.mark.asyncio
async def test_invalid_manifests_do_not_hold_back_a_configmap_edit(tmp_path: Path) -> None:
    # Defect: the reverse of test_serve_cli's test_invalid_configmap_does_not_hold_back_...:
    # while a manifest held an invalid edit (the last good table serving), a valid ConfigMap
    # edit (raising proxy-body-size during an incident) was not applied until the manifests
    # were fixed; the log only repeated the manifests' errors.
    m, cm, server, r = _with_configmap(tmp_path)
    _bump(m, BAD_INGRESS)
    assert await r.check() is False and "spec.rules[0].host" in (r.last_error or "")
    _bump(cm, _configmap("1k"))
    assert await r.check() is False  # the manifests are still invalid, and said so
    assert "spec.rules[0].host" in (r.last_error or "")
    assert server.settings is not None and server.settings.proxy_body_size == 1024
    assert [i.metadata.name for i in server.router.resources.ingresses] == ["a"]  # the last good
    _bump(m, _ingress("b", "b.test"))
    assert await r.check() is True
    assert [i.metadata.name for i in server.router.resources.ingresses] == ["b"]
    assert server.settings.proxy_body_size == 1024


@pytest.mark.asyncio
async def test_a_reload_with_both_invalid_logs_both(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Defect: the ConfigMap's error was dropped when the manifests failed too.
    m, cm, server, r = _with_configmap(tmp_path)
    _bump(m, BAD_INGRESS)
    _bump(cm, _configmap("big"))
    with caplog.at_level(logging.ERROR, logger="ingresslib.serve"):
        assert await r.check() is False
    error = r.last_error or ""
    assert "data.proxy-body-size" in error and "spec.rules[0].host" in error
    assert "data.proxy-body-size" in caplog.text and "spec.rules[0].host" in caplog.text
    assert server.settings is None


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_logs_what_check_warns(tmp_path: Path) -> None:
    # The same from the cluster: the first complete snapshot's notes, once.
    import yaml

    from tests.test_serve_kube import _fake_cluster

    objs = [dict(d, metadata=dict(d["metadata"], namespace="default"))
            for d in yaml.safe_load_all(CANARY)]
    kube, cfg = await _fake_cluster(tmp_path, *objs)
    try:
        p, ports = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                           "--listen", "127.0.0.1:0", "--access-log", "off")
        try:
            for _ in range(200):  # 404 until the first snapshot is in, then 503 (no Service)
                if await asyncio.to_thread(_status, ports["http"], "app.test") == 503:
                    break
                await asyncio.sleep(0.05)
        finally:
            err = await asyncio.to_thread(_stop, p)
    finally:
        await kube.stop()
    assert err.count(SHADOWED) == 1 and err.count(IGNORED) == 1, err


def _ingresses_in_request_series(port: int) -> set[str]:
    import re
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return set(re.findall(r'nginx_ingress_controller_requests\{[^}]*ingress="([^"]*)"', text))


def test_a_reload_drops_the_request_series_of_an_ingress_no_longer_served(
        tmp_path: Path) -> None:
    # ingress-nginx's RemoveMetrics on each sync: an Ingress deleted (a preview environment
    # torn down) takes its series with it; before, they stayed until the process restarted.
    # No backend (web: nothing listens, 502; preview: no such Service, 503): an answer is
    # counted under its Ingress whatever its status.
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "web.yaml").write_text(_manifests("web", [free_port()]))
    (folder / "preview.yaml").write_text(_ingress("preview", "pr.test"))
    p, ports = _start_serve("-f", str(folder), "--listen", "127.0.0.1:0", "--metrics-listen",
                            "127.0.0.1:0", "--reload-interval", "0.1", "--access-log", "off")
    try:
        for host in ("app.test", "pr.test"):
            with socket.create_connection(("127.0.0.1", ports["http"]), timeout=10) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
                          b"Connection: close\r\n\r\n")
                assert c.recv(100).startswith(b"HTTP/1.1 50")
        assert {"web", "preview"} <= _ingresses_in_request_series(ports["metrics"])
        (folder / "preview.yaml").unlink()
        deadline = time.monotonic() + 10
        while "preview" in _ingresses_in_request_series(ports["metrics"]):
            assert time.monotonic() < deadline, "the removed Ingress's series stayed"
            time.sleep(0.1)
        assert "web" in _ingresses_in_request_series(ports["metrics"])
    finally:
        _stop(p)

