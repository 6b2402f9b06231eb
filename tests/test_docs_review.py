"""More of the docs made executable (session 11's review): the examples run as their docs say,
and the names, flags, signatures and constants the docs quote are the code's.

tests/test_docs.py runs the docs' Python blocks and checks the tables; this module adds:

- every example program runs as documented, in a child process on 127.0.0.1, bounded in time
  (``examples/asgi_app.py``; ``ingresslib demo`` and the ``curl`` lines it prints);
- ``examples/deploy/``: the container's arguments are ones ``ingresslib serve`` accepts;
- every ``--flag`` the docs write is a flag of the CLI (or of the named other tool);
- every ``ingresslib.*`` logger the docs name is one the library logs on;
- API.md's synopses (``Proxy(...)``, the ``conn.*`` methods, the action types) are the real
  signatures, and the constants it quotes have the quoted values;
- the objects docs/router.md's "Modules" table names live in the module it names;
- inline calls written in the docs (`` `name(a, b)` ``) pass no more positional arguments than
  the function takes.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import http.client
import inspect
import logging
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib._cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = {
    "asgi": ROOT / "docs" / "asgi.md",
    "cluster": ROOT / "docs" / "cluster.md",
    "observability": ROOT / "docs" / "observability.md",
    "router": ROOT / "docs" / "router.md",
    "proxy-api": ROOT / "ingresslib" / "proxy" / "API.md",
}
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
PY = sys.executable


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def one_line(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def fenced(path: Path) -> list[str]:
    """The bodies of the ``` fences of a Markdown file."""
    return re.findall(r"^```[^\n]*\n(.*?)^```", text(path), re.M | re.S)


# --- child processes ---------------------------------------------------------------------------


class Child:
    """A process started by a test: its output lines collected by reader threads (so a silent
    process cannot hang the test), stopped with SIGINT, then SIGKILL, by its own pid."""

    def __init__(self, argv: list[str], cwd: Path = ROOT) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read, args=(s,), daemon=True)
                         for s in (self.proc.stdout, self.proc.stderr)]
        for t in self._threads:
            t.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        rx = re.compile(pattern)
        with self._cond:
            found = self._cond.wait_for(
                lambda: any(rx.search(ln) for ln in self.lines) or self.proc.poll() is not None,
                timeout)
            for ln in self.lines:
                m = rx.search(ln)
                if m:
                    return m
        raise AssertionError(f"no line matching {pattern!r} (found={found}, "
                             f"exit={self.proc.poll()}):\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._threads:
            t.join(5)
        for s in (self.proc.stdout, self.proc.stderr):
            if s is not None:
                s.close()
        return self.proc.returncode


def get(port: int, path: str, host: str, *, tls_name: str | None = None,
        timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1:port with this Host header (over TLS with this SNI name and no
    certificate check, as ``curl -k --resolve`` does)."""
    conn: http.client.HTTPConnection
    if tls_name is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        conn.sock = ctx.wrap_socket(sock, server_hostname=tls_name)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# --- the examples, run as documented ---------------------------------------------------------------


@pytest.mark.network
def test_asgi_example_runs_as_its_docstring_says() -> None:
    """``python examples/asgi_app.py`` (with ``--port 0``), then the docstring's ``curl``."""
    doc = ast.get_docstring(ast.parse(text(EXAMPLES / "asgi_app.py")))
    assert doc is not None and "python examples/asgi_app.py --port 0" in doc
    child = Child([PY, str(EXAMPLES / "asgi_app.py"), "--port", "0"])
    try:
        port = int(child.wait_for(r"running on http://127\.0\.0\.1:(\d+)").group(1))
        for curl in re.findall(r"``(curl [^`]+)``", doc):
            argv = shlex.split(curl)
            host = argv[argv.index("-H") + 1].split(": ", 1)[1]
            url = argv[-1]
            assert url.startswith("http://127.0.0.1:8000/")
            status, _, body = get(port, url.removeprefix("http://127.0.0.1:8000"), host)
            assert status == 200, (curl, body)
            if url.endswith("/api/items"):
                assert b'"served_by": "shop/api:80"' in body
            else:
                assert b"<h1>shop</h1>" in body
        status, _, _ = get(port, "/api/items", "127.0.0.1")  # "Without that Host header: 404"
        assert status == 404
    finally:
        assert child.stop() == 0, "\n".join(child.lines)


@pytest.mark.network
def test_demo_serves_what_its_curl_lines_say() -> None:
    """``ingresslib demo`` (free ports): each ``curl`` line it prints gets the answer its
    comment announces (the service named, round-robin over the pods named, 404, HTTPS + HSTS)."""
    child = Child([PY, "-m", "ingresslib", "demo", "--listen", "127.0.0.1:0",
                   "--tls-listen", "127.0.0.1:0"])
    try:
        child.wait_for(r"^listening on https://127\.0\.0\.1:\d+")
        child.wait_for(r"^Ctrl-C to stop")  # stdout: the curl lines come before it
        curls = [ln.strip() for ln in child.lines if ln.strip().startswith("curl ")]
        assert len(curls) >= 6, child.lines
        for line in curls:
            cmd, _, comment = line.partition("#")
            argv = shlex.split(cmd)
            (url,) = [a for a in argv if a.startswith(("http://", "https://"))]
            m = re.match(r"https?://([^/:]+):(\d+)(/.*)", url)
            assert m is not None, line
            name, port, path = m.group(1), int(m.group(2)), m.group(3)
            host = name
            if url.startswith("https://"):
                short = "".join(a[1:] for a in argv if re.match(r"^-[a-z]+$", a))
                assert "--resolve" in argv and "k" in short, line  # no certificate check
                status, headers, body = get(port, path, name, tls_name=name)
                assert status == 200 and "strict-transport-security" in headers, line
            else:
                host = argv[argv.index("-H") + 1].split(": ", 1)[1]
                status, headers, body = get(port, path, host)
            if "404" in comment:
                assert status == 404, line
                continue
            assert status == 200, (line, status, body)
            service = re.search(rb"^service: (\S+)$", body, re.M)
            assert service is not None, body
            pods = set()
            for _ in range(6):  # "guest-0, guest-1 in turn", "admin-0..2 round-robin"
                _, _, b = (get(port, path, name, tls_name=name) if url.startswith("https://")
                           else get(port, path, host))
                pod = re.search(rb"^pod: (\S+)$", b, re.M)
                assert pod is not None
                pods.add(pod.group(1).decode())
            svc = service.group(1).decode()
            # The comment names the service, or the path does (`/admin`).
            assert re.search(rf"(^|[ (/]){re.escape(svc)}\b", comment + " " + path), (line, svc)
            if "guest-0, guest-1" in comment:
                assert pods == {"guest-0", "guest-1"}
            if "admin-0..2" in comment:
                assert pods == {"admin-0", "admin-1", "admin-2"}
    finally:
        assert child.stop() in (0, -signal.SIGINT, 130), "\n".join(child.lines)


# --- examples/deploy --------------------------------------------------------------------------------


def test_deploy_container_command_lines_parse() -> None:
    """The Deployment's ``args`` (and the commented-out ``--namespace``), and the Dockerfile's
    ``CMD``, are command lines ``ingresslib`` accepts."""
    import yaml

    parser = build_parser()
    docs = list(yaml.safe_load_all(text(EXAMPLES / "deploy" / "deployment.yaml")))
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    ns = parser.parse_args(args)
    assert ns.kubernetes and ns.controller == "ingresslib.io/controller"
    commented = re.findall(r"#\s*- (--[\w-]+=\S+)", text(EXAMPLES / "deploy" / "deployment.yaml"))
    assert commented
    parser.parse_args(args + commented)
    # The probes hit the metrics listener's /healthz.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ns.metrics_listen.endswith(f":{ports['metrics']}")
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # Liveness is not readiness: /healthz is 503 until the first table and while draining.
    assert container["livenessProbe"]["tcpSocket"] == {"port": "metrics"}
    # The preStop sleep and the drain both fit in the grace period, or SIGKILL cuts the drain.
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert float(sleep[1]) + ns.shutdown_timeout < grace
    dockerfile = text(EXAMPLES / "deploy" / "Dockerfile")
    entry = ast.literal_eval(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    cmd = ast.literal_eval(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert entry == ["ingresslib"]
    assert parser.parse_args(cmd).kubernetes
    assert "[k8s]" in dockerfile  # --kubernetes needs the extra


# --- flags, loggers -------------------------------------------------------------------------------

#: Flags the docs write for programs not in this repository: kubectl, uvicorn, ingress-nginx,
#: mypy, pytest, pip. The repository's own programs' flags are read from their parsers
#: (``_program_flags``): a new flag there needs no edit here.
FOREIGN_FLAGS = {
    "--replicas", "--image",                                        # kubectl
    "--host", "--port", "--root-path", "--proxy-headers", "--forwarded-allow-ips",  # uvicorn
    "--metrics-per-host", "--annotations-prefix", "--watch-namespace",  # ingress-nginx
    "--strict", "--benchmark-only",                                  # mypy, pytest
    "--no-cache-dir", "--force-reinstall", "--no-binary",            # pip
}

#: The repository's command-line programs other than ``ingresslib`` that the docs quote.
PROGRAMS = [ROOT / "benchmarks" / "load" / "run.py", EXAMPLES / "sansio_blocking_proxy.py",
            EXAMPLES / "asgi_app.py"]


def _argparse_flags(path: Path) -> set[str]:
    """The option strings of every ``*.add_argument(...)`` call in ``path``'s source. Read, not
    run: run.py builds its parser inside ``main()``, which then runs the benchmark. A flag made
    by anything but a literal (a loop, a variable) would be missed: the check below fails then,
    naming it, rather than passing a flag that does not exist."""
    flags: set[str] = set()
    for node in ast.walk(ast.parse(text(path), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            flags.update(a.value for a in node.args
                         if isinstance(a, ast.Constant) and isinstance(a.value, str)
                         and a.value.startswith("-"))
    return flags


def _program_flags() -> set[str]:
    return set().union(*(_argparse_flags(p) for p in PROGRAMS))


def _unknown_flags(s: str, known: set[str]) -> set[str]:
    """The ``--flags`` written in ``s`` that are neither in ``known`` nor foreign."""
    return {flag for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", s)
            if flag not in known and flag not in FOREIGN_FLAGS}


def _cli_flags() -> set[str]:
    flags: set[str] = set()

    def walk(p: argparse.ArgumentParser) -> None:
        for a in p._actions:
            flags.update(a.option_strings)
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    walk(sub)

    walk(build_parser())
    return flags


def test_documented_flags_exist() -> None:
    known = _cli_flags() | _program_flags()
    assert {"--reload-interval", "--access-log", "--kubernetes"} <= known
    assert {"--duration", "--rounds", "--core-only", "--serve-ab"} <= _program_flags()
    for path in [README, *DOCS.values(), *EXAMPLES.glob("*.py"),
                 *EXAMPLES.glob("deploy/*.yaml")]:  # the Dockerfile's CMD: the test above
        unknown = _unknown_flags(text(path), known)
        assert not unknown, (path.name, sorted(unknown))
    # The two examples' own flags are theirs.
    for example, flags in [("sansio_blocking_proxy.py", ("--backend", "--listen", "--verbose")),
                           ("asgi_app.py", ("--port",))]:
        out = subprocess.run([PY, str(EXAMPLES / example), "--help"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        for f in flags:
            assert f in out.stdout, (example, f)


def test_documented_serve_defaults() -> None:
    obs = one_line(text(DOCS["observability"]))
    ns = build_parser().parse_args(["serve", "-f", "x"])
    m = re.search(r"`--access-log \{([\w,]+)\}` \(default `(\w+)`\)", obs)
    assert m is not None
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    (action,) = [a for a in sub.choices["serve"]._actions if "--access-log" in a.option_strings]
    assert action.choices is not None
    assert m.group(1).split(",") == list(action.choices) and ns.access_log == m.group(2)
    assert "Off when not given" in obs and ns.metrics_listen is None
    readme = one_line(text(README))
    m = re.search(r"every `--reload-interval` seconds \(default (\d+)[;)]", readme)
    assert m is not None and ns.reload_interval == float(m.group(1))


def _code_loggers() -> set[str]:
    names: set[str] = set()
    for f in (ROOT / "ingresslib").rglob("*.py"):
        names |= set(re.findall(r'getLogger\("([\w.]+)"\)', text(f)))
    return names


def test_documented_loggers_exist() -> None:
    """Every logger the docs tell users to configure is one the library logs on."""
    loggers = _code_loggers()
    named: set[str] = set()
    for path in [README, *DOCS.values()]:
        s = one_line(text(path))
        named |= set(re.findall(r"(?:logger|logs? on|logged on) `(ingresslib(?:\.\w+)*)`", s))
        named |= set(re.findall(r"\bon `(ingresslib\.\w+)`", s))
        named |= set(re.findall(r'logger "(ingresslib(?:\.\w+)*)"', s))
    assert {"ingresslib.access", "ingresslib.store", "ingresslib.metrics",
            "ingresslib.proxy"} <= named
    assert named <= loggers, named - loggers


# --- API.md synopses and constants ------------------------------------------------------------------


def _split_params(s: str) -> list[str]:
    """Top-level comma-separated parts of a parameter list (brackets nest)."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out if p.strip()]


def _params(s: str) -> list[tuple[str, str | None]]:
    """``[(name, default source or None)]`` of ``a: int, b: T = 1, *, c=2``."""
    out: list[tuple[str, str | None]] = []
    for p in _split_params(s):
        if p == "*":
            continue
        head, eq, default = p.partition("=")
        name = head.split(":")[0].strip()
        out.append((name, default.strip() if eq else None))
    return out


def _check_params(where: str, documented: list[tuple[str, str | None]], obj: Any,
                  skip_self: bool = False) -> None:
    params = list(inspect.signature(obj).parameters.values())[1 if skip_self else 0:]
    assert [n for n, _ in documented] == [p.name for p in params], where
    env = {"time": __import__("time")}
    for (name, default), p in zip(documented, params):
        if default is None:
            assert p.default is p.empty or p.kind is p.KEYWORD_ONLY, (where, name)
            continue
        assert p.default == eval(default, env), (where, name, default)  # noqa: S307


def _synopsis_blocks() -> list[str]:
    return [re.sub(r"#[^\n]*", "", b) for b in fenced(DOCS["proxy-api"])]


def test_proxy_synopsis_is_the_signature() -> None:
    from ingresslib.proxy import ClientConnection, Proxy

    (block,) = [b for b in _synopsis_blocks() if b.startswith("Proxy(")]
    m = re.match(r"Proxy\((.*?)\)\s*\nproxy\.", block, re.S)
    assert m is not None
    call = m.group(1)
    _check_params("Proxy", _params(call), Proxy)
    for attr in re.findall(r"^proxy\.(\w+)\s*$", block, re.M):
        assert attr in Proxy.__init__.__code__.co_names or hasattr(Proxy, attr), attr
    m = re.search(r"^proxy\.connection\((.*?)\) -> ClientConnection", block, re.M | re.S)
    assert m is not None
    _check_params("Proxy.connection", _params(m.group(1)), Proxy.connection, skip_self=True)

    (conn_block,) = [b for b in _synopsis_blocks() if b.startswith("conn.start(")]
    methods = re.findall(r"^conn\.(\w+)\((.*?)\) -> list\[Action\]", conn_block, re.M)
    assert len(methods) == 9
    for name, args in methods:
        _check_params(f"conn.{name}", _params(args), getattr(ClientConnection, name),
                      skip_self=True)
    router = ingresslib.Router(ingresslib.Resources())
    conn = Proxy(router).connection(("127.0.0.1", 1), now=0.0)
    for attr, typ in re.findall(r"^conn\.(\w+): (\w+)", conn_block, re.M):
        assert type(getattr(conn, attr)).__name__ == typ, attr


def test_action_synopsis_is_the_dataclasses() -> None:
    import ingresslib.proxy as proxy

    (block,) = [b for b in _synopsis_blocks() if b.startswith("OpenUpstream(")]
    actions = re.findall(r"^(\w+)\((.*?)\)\s*$", block, re.M | re.S)
    names = [n for n, _ in actions]
    assert names == ["OpenUpstream", "SendUpstream", "CloseUpstream", "SendDownstream",
                     "CloseDownstream", "SetTimer", "RequestDone", "TunnelEstablished"]
    for name, args in actions:
        cls = getattr(proxy, name)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name  # type: ignore[union-attr]
        _check_params(name, _params(args), cls)
    api = text(DOCS["proxy-api"])
    kinds = re.search(r"`TimerKind` \(enum\): (.*?)\n\n", api, re.S)
    assert kinds is not None
    assert re.findall(r"`(\w+)` \(", one_line(kinds.group(1))) == [k.name for k in proxy.TimerKind]


def test_api_md_constants() -> None:
    from ingresslib.proxy import _annotations, _connection, _server

    s = one_line(text(DOCS["proxy-api"]))
    assert "more than 64 KiB (`_connection._HOLD_LIMIT`)" in s
    assert _connection._HOLD_LIMIT == 64 * 1024
    assert ("in 4 KiB slices, at most 2 ms of loop time per iteration (`_server._FEED_SLICE`, "
            "`_FEED_BUDGET`)") in s
    assert (_server._FEED_SLICE, _server._FEED_BUDGET) == (4096, 0.002)
    assert "(60 s, `_server._SEND_TIMEOUT`;" in s and _server._SEND_TIMEOUT == 60.0
    assert "`REWRITE_TIMEOUT` (50 ms)" in s and _annotations.REWRITE_TIMEOUT == 0.05
    assert "`_server._HupWatch`" in s and hasattr(_server, "_HupWatch")
    assert "`conn.plain_body(len(data))`" in s
    assert inspect.signature(_connection.ClientConnection.plain_body).parameters.keys() == {
        "self", "n"} or len(inspect.signature(_connection.ClientConnection.plain_body)
                            .parameters) == 2
    assert "`RouteOptions.next_upstream_timeout`" in s
    assert "next_upstream_timeout" in {f.name for f in dataclasses.fields(_annotations.RouteOptions)}
    assert "`ProxySettings.field_names()`" in s
    from ingresslib.proxy import ProxySettings, _settings

    assert ProxySettings.field_names() == {f.name for f in dataclasses.fields(ProxySettings)}
    assert _settings.parse_header_buffers("4 16k") == (16384, 16384, 65536)
    assert "`ProxyError(Exception)` (abstract) with `status_hint: int`" in s
    from ingresslib.proxy import LocalProxyError, ProxyError, RemoteProxyError

    assert LocalProxyError("x", 500).status_hint == 500 and RemoteProxyError("x").status_hint
    with pytest.raises(TypeError):
        ProxyError("abstract")


# --- router.md's modules table ------------------------------------------------------------------------


def test_router_modules_table_names_exist() -> None:
    import importlib

    s = text(DOCS["router"])
    table = s[s.index("| module | job |"):s.index("## Design")]
    checked = 0
    for row in table.splitlines()[2:]:
        if not row.startswith("|"):
            continue
        cells = row.split("|")
        modules = re.findall(r"`(_\w+)\.py`", cells[1])
        objects = [n for n in re.findall(r"`(\w+)(?:\.\w+)?`", cells[2])
                   if n[0].isupper() or n in ("explicit_choice", "http_header")]
        mods = [importlib.import_module(f"ingresslib.{m}") for m in modules]
        for name in objects:
            assert any(hasattr(m, name) for m in mods), (modules, name)
            checked += 1
        for dotted in re.findall(r"`(\w+\.(?!py`)\w+)`", cells[2]):
            cls, attr = dotted.split(".")
            assert any(hasattr(getattr(m, cls, None), attr) for m in mods), dotted
    assert checked >= 10
    # "`router.route` is its bound `route`" of a FastRoute (compiled) on each published state.
    router = ingresslib.Router(ingresslib.Resources())
    assert "route" in vars(router)  # an instance attribute, set with the state
    assert type(router.route.__self__).__name__ == "FastRoute"  # type: ignore[attr-defined]


# --- inline calls: positional arity -------------------------------------------------------------------

#: What the docs' variable names stand for.
_INSTANCES = {
    "router": ingresslib.Router, "table": ingresslib.RouteTable, "store": ingresslib.ResourceStore,
    "metrics": "ingresslib._metrics.Metrics", "app": ingresslib.IngressASGI,
    "watcher": ingresslib.ClusterWatcher, "conn": "ingresslib.proxy.ClientConnection",
    "proxy": "ingresslib.proxy.Proxy", "server": "ingresslib.proxy._server.ProxyServer",
}


def _resolve(name: str) -> Any:
    import importlib

    head, _, rest = name.partition(".")
    if head in _INSTANCES:
        obj = _INSTANCES[head]
        if isinstance(obj, str):
            mod, _, cls = obj.rpartition(".")
            obj = getattr(importlib.import_module(mod), cls)
        for part in rest.split(".") if rest else []:
            obj = getattr(obj, part, None)
        return obj
    parts = name.split(".")
    if parts[0] == "ingresslib":
        parts = parts[1:]
    candidates: list[Any] = [ingresslib]
    if len(parts) == 1:
        from ingresslib import _accesslog, _kube, _metrics, _serve

        candidates += [_metrics, _accesslog, _serve, _kube]
    for obj in candidates:
        for p in parts:
            if hasattr(obj, "__path__") and not hasattr(obj, p):
                try:
                    obj = importlib.import_module(f"{obj.__name__}.{p}")
                    continue
                except ImportError:
                    obj = None
                    break
            obj = getattr(obj, p, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def test_inline_calls_take_that_many_arguments() -> None:
    checked = 0
    for path in [README, *DOCS.values()]:
        for name, args in re.findall(r"`([\w.]+)\(([^`()]*)\)`", one_line(text(path))):
            obj = _resolve(name)
            if obj is None or not callable(obj):
                continue
            parts = [a for a in _split_params(args) if a not in ("...", "*")]
            positional = [a for a in parts if not re.match(r"^\w+=", a) and not a.startswith("*")]
            sig = inspect.signature(obj)
            params = list(sig.parameters.values())
            if params and params[0].name == "self":
                params = params[1:]
            if any(p.kind is p.VAR_POSITIONAL for p in params):
                continue
            takes = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            assert len(positional) <= len(takes), (path.name, name, args)
            checked += 1
    assert checked >= 20


def test_logging_null_handler_claim() -> None:
    """observability.md: "the library itself only adds a `NullHandler`"."""
    handlers = logging.getLogger("ingresslib").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


# --- router.md: the differences table and the figures it states ----------------------------------


def _router_rows() -> dict[str, str]:
    s = text(DOCS["router"])
    table = s[s.index("## Differences from ingress-nginx"):s.index("## Performance")]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| (R\d+) \|.*$", table, re.M)}


def test_readme_row_references_name_router_rows() -> None:
    """README cites router.md's rows as "(R1)", "(R10-R11)": they exist, in order R1..R30, and
    each README row shares a topic word with the row it cites."""
    rows = _router_rows()
    assert list(rows) == [f"R{i}" for i in range(1, len(rows) + 1)]
    readme = text(README)
    assert f"(rows R1-R{len(rows)} there)" in readme
    cited = 0
    for line in readme.splitlines():
        refs = re.findall(r"\bR(\d+)\b", line)
        if not line.startswith("|") or not refs:
            continue
        words = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", line.split("|")[2])}
        cited_rows = " ".join(rows[f"R{n}"].lower() for n in refs)  # a range: any of its rows
        assert any(w[:4] in cited_rows for w in words), (refs, line[:80])  # "retries", "retry"
        cited += len(refs)
    assert cited >= 15


def test_router_md_constants() -> None:
    from ingresslib import _balance, _canary, _hashing

    s = one_line(text(DOCS["router"]))
    assert "ketama-style ring, 160 points/endpoint" in s and _hashing.POINTS_PER_MEMBER == 160
    assert "a ring holds at most 163,840 points (1,024 unit-weight endpoints' worth)" in s
    assert _hashing.MAX_RING_POINTS == 163_840 == 160 * 1024
    assert "at most 4,096 DFA states" in s and _canary.LinearRegex._CACHE_LIMIT == 4096
    assert "repeats above 1,000 or patterns above 20,000 NFA states" in s
    assert (_canary._MAX_REPEAT, _canary._MAX_STATES) == (1000, 20_000)
    assert "idle (10 s)" in s and _balance.Ewma.DECAY_TIME == 10.0
    assert "(min gap 0.1 s); failures count ≥ 1 s" in s
    assert (_balance.Ewma.MIN_SAMPLE_GAP, _balance.Ewma.FAILURE_PENALTY) == (0.1, 1.0)
    assert "`-subset-size` (default 3)" in s and _balance.BalancerSpec("chash").subset_size == 3
    assert "`session-cookie-name` (INGRESSCOOKIE)" in s
    assert _balance.AffinityConfig().name == "INGRESSCOOKIE"
    assert "`canary-weight-total` (default 100)" in s
    assert _canary.CanaryConfig.__dataclass_fields__["weight_total"].default == 100


def test_api_md_h11_pin_is_the_project_pin() -> None:
    import tomllib

    deps = tomllib.loads(text(ROOT / "pyproject.toml"))["project"]["dependencies"]
    assert "pin `h11>=0.16,<0.17`" in one_line(text(DOCS["proxy-api"]))
    assert "h11>=0.16,<0.17" in deps


def test_api_md_import_block_is_the_package_api() -> None:
    """The import block at the top of API.md lists every public name of ``ingresslib.proxy``
    but those imported on first use (``ProxyServer``, which the text names; ``CertificateStore``
    and the ConfigMap reader's ``ServerConfig``: not part of the sans-IO core)."""
    import ingresslib.proxy as proxy

    block = fenced(DOCS["proxy-api"])[0]
    names = set(re.findall(r"\b([A-Z]\w+)\b", block))
    assert names == set(proxy.__all__) - set(proxy._LAZY)
    assert "`ingresslib.proxy.ProxyServer`" in text(DOCS["proxy-api"])


def test_request_record_optional_fields_and_properties() -> None:
    """API.md: the fields after "Optional" have defaults, the others do not; `duration` and
    `upstream_latency` are properties."""
    from ingresslib.proxy import RequestRecord

    s = text(DOCS["proxy-api"])
    block = s[s.index("### `RequestRecord`"):s.index("### Errors")]
    required, _, optional = block.partition("Optional (defaults")
    field_rx = r"\b(\w+):\s+(?:int|str|float|bool|tuple)\b"
    fields = dataclasses.fields(RequestRecord)
    assert set(re.findall(field_rx, optional)) == {
        f.name for f in fields if f.default is not dataclasses.MISSING}
    assert set(re.findall(field_rx, required)) == {
        f.name for f in fields if f.default is dataclasses.MISSING}
    for prop in re.findall(r"\b(\w+) -> [\w |]+\(property", block):
        assert isinstance(getattr(RequestRecord, prop), property), prop
    assert "duration -> float (property" in block


def test_watch_metric_labels_match() -> None:
    from ingresslib._metrics import Metrics

    s = text(DOCS["observability"])
    table = s[s.index("### Cluster watch (ours)"):s.index("### Differences from ingress-nginx")]
    m = Metrics()
    m.watch_event("Ingress", "ADDED")
    for f in (m.watch_error, m.watch_reconnect, m.watch_relist):
        f("Ingress")
    body = m.render().decode()
    rows = re.findall(r"^\| `(ingresslib_watch_\w+)` \| (.*) \|$", table, re.M)
    assert len(rows) == 4
    for name, labels in rows:
        documented = re.findall(r"^`(\w+)`|\), `(\w+)`|^`\w+` \([^)]*\), `(\w+)`", labels)
        want = [x for grp in documented for x in grp if x]
        series = re.search(rf"^{name}\{{(.*?)\}}", body, re.M)
        assert series is not None, name
        assert re.findall(r'(\w+)="', series.group(1)) == want, (name, want)


def test_examples_type_check_strict() -> None:
    """The examples are code users copy: they pass ``mypy --strict`` as the library does
    (asgi_app.py annotated its apps' scope as ``dict``, which IngressASGI's backends refuse)."""
    files = [str(p) for p in sorted(EXAMPLES.glob("*.py"))]
    assert len(files) == 3
    # The library itself is mypy-checked by `make test`: only the examples' own errors here.
    out = subprocess.run([PY, "-m", "mypy", "--strict", "--follow-imports=silent", *files],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


# --- annotations: every one the code reads is documented ---------------------------------------------

_PREFIX_NAMES = ("_P", "PREFIX")
_READERS = ("get", "_int_annotation", "_bool_annotation")


def _annotations_read() -> dict[str, str]:
    """Short names of the ``nginx.ingress.kubernetes.io/`` annotations the library reads:
    ``_P + "name"``, the full literal, or a reader's argument (``get("ssl-redirect")``,
    ``_int_annotation(ann, "session-cookie-max-age", warn)``)."""
    found: dict[str, str] = {}
    for f in (ROOT / "ingresslib").rglob("*.py"):
        if f.name == "_demo.py":  # the demo reads response headers with .get()
            continue
        for node in ast.walk(ast.parse(text(f))):
            if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
                    and isinstance(node.left, ast.Name) and node.left.id in _PREFIX_NAMES
                    and isinstance(node.right, ast.Constant) and isinstance(node.right.value, str)):
                found.setdefault(node.right.value, f.name)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and re.fullmatch(r"nginx\.ingress\.kubernetes\.io/[a-z][a-z0-9-]+", node.value)):
                found.setdefault(node.value.split("/", 1)[1], f.name)
            elif isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else (
                    fn.attr if isinstance(fn, ast.Attribute) else "")
                if name in _READERS:
                    for a in node.args:
                        if (isinstance(a, ast.Constant) and isinstance(a.value, str)
                                and re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", a.value)):
                            found.setdefault(a.value, f.name)
    return found


def test_every_annotation_read_is_documented() -> None:
    read = _annotations_read()
    assert {"canary-weight", "session-cookie-max-age", "upstream-hash-by-subset-size",
            "proxy-next-upstream-timeout", "service-upstream"} <= set(read)
    docs = " ".join(text(p) for p in [README, *DOCS.values()])
    router = text(DOCS["router"])
    for name, where in read.items():
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", docs):
            continue
        # router.md's balancer table writes a row's family in short: `-max-age` after
        # `session-cookie-name`, `-subset-size` after `upstream-hash-by`.
        family = next((p for p in ("session-cookie", "upstream-hash-by") if name.startswith(p)),
                      None)
        assert family is not None and f"`-{name[len(family) + 1:]}`" in router, (name, where)


def test_cluster_md_deploy_table_lists_the_folder() -> None:
    """docs/cluster.md's table of examples/deploy/ names every file there, and kustomize
    applies exactly the table's manifests (example-ingress.yaml is applied on its own)."""
    import yaml

    s = text(DOCS["cluster"])
    table = s[s.index("| file | what it holds |"):s.index("**Scaling out means")]
    listed = set(re.findall(r"^\| `([\w.-]+)` \|", table, re.M))
    folder = {p.name for p in (EXAMPLES / "deploy").iterdir()}
    assert listed | {"kustomization.yaml", "example-ingress.yaml"} == folder
    kustomization = yaml.safe_load(text(EXAMPLES / "deploy" / "kustomization.yaml"))
    assert set(kustomization["resources"]) == {f for f in listed if f.endswith(".yaml")}
    assert "kubectl apply -k examples/deploy/" in s
    assert "kubectl apply -f examples/deploy/example-ingress.yaml" in s
    # The image the Deployment names is the one the docs tell to replace.
    deployment = text(EXAMPLES / "deploy" / "deployment.yaml")
    image = re.search(r"image: (\S+)", deployment)
    assert image is not None and f"`{image.group(1)}`" in s
    assert f"set image\n{image.group(1).split(':')[0]}=" in s or \
        f"set image {image.group(1).split(':')[0]}=" in one_line(s)


def test_asgi_live_updates_wrapper_runs_the_watcher(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/asgi.md "Live updates": ``app_with_watch`` starts ``watcher.run(stop)`` for the
    server's lifespan, passes the lifespan on to the apps, and stops the watcher at shutdown."""
    import asyncio
    import io
    from contextlib import redirect_stdout

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_docs import SHOP, python_blocks, run_block
    finally:
        sys.path.remove(str(Path(__file__).parent))
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "shop.yaml").write_text(SHOP)
    monkeypatch.chdir(tmp_path)
    ns: dict[str, Any] = {"__name__": "doc_asgi"}
    with redirect_stdout(io.StringIO()):
        for b in python_blocks(DOCS["asgi"]):
            if b.marker is None:
                run_block(b, ns, "asgi.md")
    assert "app_with_watch" in ns
    events: list[str] = []

    class FakeWatcher:
        async def run(self, stop: asyncio.Event) -> None:
            events.append("watch")
            await stop.wait()
            events.append("stopped")

    ns["watcher"] = FakeWatcher()

    async def lifespan() -> list[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        out: list[dict[str, Any]] = []

        async def send(m: dict[str, Any]) -> None:
            out.append(m)
            if m["type"] == "lifespan.startup.complete":
                await asyncio.sleep(0)
                assert events == ["watch"]  # running while the server serves
                q.put_nowait({"type": "lifespan.shutdown"})

        q.put_nowait({"type": "lifespan.startup"})
        await ns["app_with_watch"]({"type": "lifespan", "asgi": {"version": "3.0"},
                                    "state": {}}, q.get, send)
        return out

    out = asyncio.run(lifespan())
    assert [m["type"] for m in out] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["watch", "stopped"]


def test_deploy_example_ingress_is_served_by_the_deployment_flags(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``ingresslib check`` accepts examples/deploy/, and with the Deployment's own
    ``--controller`` the example Ingress is served: hello.example.com reaches default/hello:80
    (503 until the Service docs/cluster.md has you create exists)."""
    import json

    import yaml

    from ingresslib._cli import main as cli_main

    deploy = str(EXAMPLES / "deploy")
    assert cli_main(["check", "-f", deploy]) == 0
    docs = list(yaml.safe_load_all(text(EXAMPLES / "deploy" / "deployment.yaml")))
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment"]
    (controller,) = [a for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
                     if a.startswith("--controller=")]
    capsys.readouterr()
    assert cli_main(["explain", "-f", deploy, controller, "-o", "json",
                     "http://hello.example.com/"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["match"]["ingress"] == "default/hello"
    assert (out["decision"]["service"], out["decision"]["endpoint"]) == ("hello", None)
    # Another controller serves nothing here.
    assert cli_main(["explain", "-f", deploy, "--controller", "k8s.io/ingress-nginx", "-o",
                     "json", "http://hello.example.com/"]) == 0
    assert json.loads(capsys.readouterr().out)["match"] is None


def test_core_modules_import_no_io() -> None:
    """API.md: "The core's modules import no `socket`, `asyncio`, `ssl`", and `ProxyServer`'s
    module is imported on first use."""
    s = one_line(text(DOCS["proxy-api"]))
    assert "The core's modules import no `socket`, `asyncio`, `ssl` or logging handlers" in s
    for f in (ROOT / "ingresslib" / "proxy").glob("_*.py"):
        if f.name == "_server.py":
            continue
        imported = set()
        for node in ast.walk(ast.parse(text(f))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
        assert not imported & {"socket", "asyncio", "ssl", "selectors"}, (f.name, imported)
    out = subprocess.run([PY, "-c", "import sys, ingresslib.proxy as p; "
                          "a = 'ingresslib.proxy._server' in sys.modules; p.ProxyServer; "
                          "print(a, 'ingresslib.proxy._server' in sys.modules)"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.split() == ["False", "True"], out.stderr
