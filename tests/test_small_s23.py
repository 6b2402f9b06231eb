"""Session 23, the lead's own small fixes.

- ``ProxyServer.start`` cancelled at the ``sleep(0)`` asyncio's ``create_server`` takes once its
  listener serves (an embedding's ``asyncio.timeout`` or TaskGroup cancelling the start) lost
  the ``asyncio.Server`` it had made: not in ``server.servers``, so ``shutdown()`` never closed
  it and the port went on accepting connections (until the server object was collected). The
  listeners are now made with ``start_serving=False``, held, then started.
- ``upstream-hash-by`` on a request key holding a lone surrogate other than a
  ``surrogateescape`` byte (``"\\ud800"`` in a ``str`` header, cookie, query or client address an
  embedder passes to ``Router.route``) raised UnicodeEncodeError from inside the router (found by
  Y7's review); the key's bytes are now its ``surrogatepass`` form.
- serve's listener-conflict message wrote IPv6 hosts without brackets (``--metrics-listen
  ::1:18096 and --listen :::18096``), not as ``--listen`` takes them (found by Y6).
- serve's reload logged every warning of the ConfigMap again at each applied edit (an
  unsupported key reported at every change of another key; found by Y3): once now, as the
  manifests' warnings.
- IngressASGI: an app sending ``str`` response header names (uvicorn's h11 writes them) got
  ``Server`` passed on where the proxy hides an upstream's, and on an https scope with HSTS
  every answer failed (``bytes("strict-transport-security")``: TypeError, a 500); the adapter's
  ``OPTIONS *`` answer had no ``Content-Type`` where the proxy's has one (found by Z4).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib.proxy import ProxyServer

sys.path.insert(0, str(Path(__file__).parent))
from _router_helpers import P, ingress, resources, service, slice_  # noqa: E402
from _server_helpers import StubRouter  # noqa: E402
from ingresslib import Router  # noqa: E402


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.asyncio
@pytest.mark.parametrize("which", ["listen", "tls_listen"])
async def test_a_start_cancelled_as_its_listener_starts_serving_is_closed_by_shutdown(
        monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    server = ProxyServer(StubRouter([("127.0.0.1", 9)]))  # tls: a made-up default cert
    port = _free_port()
    real = asyncio.tasks.sleep
    starting: list[asyncio.Task[Any]] = []

    async def sleep(delay: float, result: Any = None) -> Any:
        if delay == 0 and sys._getframe(1).f_code.co_name in ("create_server", "start_serving"):
            starting[0].cancel()
        return await real(delay, result)

    monkeypatch.setattr(asyncio.tasks, "sleep", sleep)
    listen = ("127.0.0.1", port)
    task = asyncio.ensure_future(server.start(listen if which == "listen" else None,
                                              listen if which == "tls_listen" else None))
    starting.append(task)
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await task
    monkeypatch.undo()
    assert cancelled.value is not None  # held, as an embedding that logs it holds it
    assert len(server.servers) == 1, "the listener made is the server's to close"
    await server.shutdown(0)
    assert not _listening(port)


@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("hash_by, where", [
    ("$http_x_key", "header"), ("$cookie_k", "cookie"), ("$arg_a", "query"),
    ("$request_uri", "query"), ("$remote_addr", "client"), ("$http_x_key$arg_a", "header"),
])
def test_a_hash_key_with_a_lone_surrogate_is_hashed_not_a_traceback(
        hash_by: str, where: str, subset: bool) -> None:
    annotations = {P + "upstream-hash-by": hash_by}
    if subset:
        annotations[P + "upstream-hash-by-subset"] = "true"
    router = Router(resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)], annotations),
        service("web"), slice_("web-1", "web", [f"10.0.0.{i}" for i in range(1, 6)])), seed=1)
    endpoints = {(f"10.0.0.{i}", 8080) for i in range(1, 6)}  # the slice's port
    seen = set()
    for text in ("\ud800", "a\udfffb", "\udcff\ud800", "plain"):
        headers = [("x-key", text)] if where == "header" else (
            [("cookie", f"k={text}")] if where == "cookie" else [])
        query = f"a={text}" if where == "query" else ""
        client = text if where == "client" else "192.0.2.1"
        first = router.route("GET", "a.test", "/", headers, client, query=query)
        again = router.route("GET", "a.test", "/", headers, client, query=query)
        assert first is not None and again is not None
        assert first.endpoint in endpoints and again.endpoint in endpoints, text
        # A subset is the key's; the endpoint in it is drawn (chashsubset.lua: math.random).
        assert subset or again.endpoint == first.endpoint, text
        seen.add(first.endpoint)
    assert seen  # every key landed on one of the Service's endpoints


def test_serve_help_has_a_description_and_says_every_default() -> None:
    # Found by Y5's walk: `serve --help` had no description, and --access-log,
    # --max-connections, --reload-interval and --shutdown-timeout did not say their defaults.
    import argparse

    from ingresslib._cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.choices["serve"]
    assert serve.description and "SIGTERM" in serve.description
    silent = [a.option_strings[0] for a in serve._actions
              if a.default not in (None, False, argparse.SUPPRESS) and a.help
              and "default" not in a.help]
    assert silent == []


def test_a_listener_conflict_names_ipv6_hosts_as_the_options_take_them() -> None:
    from ingresslib import _serve

    text = _serve._listener_conflict([("--listen", ("::", 18096)),
                                      ("--metrics-listen", ("::1", 18096))])
    assert text == ("--metrics-listen [::1]:18096 and --listen [::]:18096 cannot both listen "
                    "(one port, one listener)")
    text = _serve._listener_conflict([("--listen", ("127.0.0.1", 80)),
                                      ("--tls-listen", ("0.0.0.0", 80))])
    assert text is not None and "--tls-listen 0.0.0.0:80 and --listen 127.0.0.1:80" in text


@pytest.mark.asyncio
async def test_a_configmap_edit_logs_only_the_warnings_not_logged_before(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging
    import os

    from ingresslib._config import load_config
    from ingresslib._serve import Reloader

    class Router:
        load_balance = "round_robin"

        def update(self, res: object) -> None:
            pass

    class Server:
        router = Router()
        cert_store = None
        settings: object = None

    def configmap(body: str, *extra: str) -> str:
        data = {"proxy-body-size": body, **{k: "1" for k in extra}}
        return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c", "namespace": "n"}, "data": data})

    def bump(path: Path, text: str) -> None:
        st = path.stat() if path.exists() else None
        path.write_text(text)
        if st is not None:  # a new mtime even within the file system's clock tick
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    m = tmp_path / "m.yaml"
    m.write_text("")
    cm = tmp_path / "cm.json"
    cm.write_text(configmap("1m", "worker-processes"))
    r = Reloader(Server(), [str(m)], ingress_class=None, controller=None, settle=0,
                 config=load_config(cm), config_path=str(cm))
    with caplog.at_level(logging.WARNING, logger="ingresslib.serve"):
        bump(cm, configmap("2m", "worker-processes"))
        assert await r.check() is True
        bump(cm, configmap("3m", "worker-processes", "worker-cpu-affinity"))
        assert await r.check() is True
    warned = [rec.getMessage() for rec in caplog.records
              if rec.name == "ingresslib.serve" and "ConfigMap" in rec.getMessage()]
    assert warned == ["ConfigMap n/c: data.worker-cpu-affinity: an ingress-nginx key "
                      "ingresslib does not implement, ignored"], warned


def test_ingress_asgi_reads_an_apps_str_header_names_as_uvicorn_writes_them() -> None:
    from test_review_s23_asgi import CANARY, _call

    from ingresslib import IngressASGI, parse_manifests

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [("Server", "app"), ("content-length", "2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    asgi = IngressASGI(Router(parse_manifests(CANARY), seed=1),
                       {"default/api": app, "default/can": app})
    sent = _call(asgi, scheme="https")
    head = sent[0]
    names = [bytes(n).lower() if not isinstance(n, str) else n.lower().encode()
             for n, _ in head["headers"]]
    assert head["status"] == 200 and b"server" not in names
    assert names.count(b"strict-transport-security") == 1
    assert sent[-1]["body"] == b"ok"


def test_ingress_asgi_options_asterisk_has_the_proxys_content_type() -> None:
    from test_review_s23_asgi import CANARY, _call

    from ingresslib import IngressASGI, parse_manifests

    asgi = IngressASGI(Router(parse_manifests(CANARY), seed=1), {})
    sent = _call(asgi, method="OPTIONS", path="*", raw_path=b"*")
    assert sent[0]["status"] == 200
    got = {bytes(n).lower(): bytes(v) for n, v in sent[0]["headers"]}
    assert got[b"content-type"] == b"text/plain; charset=utf-8"


def test_load_manifests_reads_a_file_named_twice_once(tmp_path: Path) -> None:
    # Found by Z3: check/explain read such a file once (their own walk, now this one), serve and
    # load_manifests read it twice: each of its objects "defined 2 times", counted twice.
    import os

    from ingresslib import load_manifests

    folder = tmp_path / "m"
    folder.mkdir()
    a = folder / "a.yaml"
    a.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                 "spec: {ports: [{port: 80}]}\n")
    os.symlink(a, tmp_path / "link.yaml")
    for paths in ([a, a], [folder, a], [a, folder], [tmp_path / "link.yaml", folder]):
        res = load_manifests(*paths)
        assert [s.metadata.name for s in res.services] == ["web"], paths
        assert not [w for w in Router(res).warnings if "2 times" in w.message], paths
    b = tmp_path / "b.yaml"
    b.write_text(a.read_text())  # another file defining the same object still warns
    res = load_manifests(a, b)
    assert len(res.services) == 2
    assert [w for w in Router(res).warnings if "2 times" in w.message]


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_stream_leaves_no_unclosed_file_at_exit(closed: int) -> None:
    # 7ef1c2c put the null device in place of a missing stdout/stderr; it was never closed:
    # "ResourceWarning: unclosed file <... name='/dev/null'>" at exit (seen at the end of CI's
    # run). Now closed by atexit, before the interpreter flushes the standard streams.
    import os
    import subprocess

    root = Path(__file__).resolve().parent.parent
    keep = 2 if closed == 1 else 1
    p = subprocess.run([sys.executable, "-X", "dev", "-m", "ingresslib", "--version"],
                       stdout=subprocess.PIPE if keep == 1 else None,
                       stderr=subprocess.PIPE if keep == 2 else None,
                       preexec_fn=lambda: os.close(closed), cwd=str(root), timeout=60,
                       env={**os.environ, "PYTHONPATH": str(root)})
    kept = p.stderr if keep == 2 else p.stdout
    assert p.returncode == 0
    assert b"ResourceWarning" not in kept and b"Exception ignored" not in kept, kept
