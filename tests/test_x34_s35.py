"""Session 35's docs walk (x34): every code example of README §1-§3, docs/router.md, docs/asgi.md,
docs/recipes.md, docs/observability.md, docs/semantics.md and ingresslib/proxy/API.md, run as
a user copies it, with what the text around it says it does.

tests/test_docs.py already runs every unmarked ```python block of README.md, router.md,
asgi.md, observability.md and API.md as written (one namespace per page, in a folder holding
``deploy/``) and parses every ``ingresslib ...`` command line; tests/test_docs_recipes.py runs
every block of recipes.md; tests/test_docs_review.py holds API.md's synopses to the signatures.
This module adds what those leave out:

- every page of the walk whose ```python blocks something should run is one those tests run
  (semantics.md has none: its examples are inline, and run below);
- the names the examples import or write (``ingresslib.X``, prose too) are public and exist;
  recipes.md's and semantics.md's inline calls take the keywords they show;
- router.md's synopsis (``doctest: skip``): each call binds to the real signature, a literal
  argument is the parameter's default, every keyword of ``Router`` is shown (``service_upstream``
  was missing: fixed in the page), each attribute exists; R10's example sequence;
- asgi.md: the first block's keys against ``explain`` and the warning the page describes; the
  "Live updates" wrapper's failure path under uvicorn (the message and exit status the page
  quotes; tests/test_user_audit_s13.py drives the same wrapper in-process); ``limit_clock``,
  an attribute the page named like an option (fixed in the page);
- README §3: the ConfigMap block loads without a warning into the settings it names, and the
  ``serve`` line starts with it; observability.md's ``serve`` line (JSON access log, metrics,
  /healthz) and its inline ``set_hosts`` expression;
- semantics.md's inline examples (§2 paths, §4 hosts and paths, §5 canonical paths, §9/§10
  defaults).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ingresslib
import test_docs
from ingresslib import _config, _metrics
from ingresslib._cli import main as cli_main

from _asgi_call import asgi_exchange
from _process_helpers import kill_after, stderr_until_exit
from test_docs import DOCS, README, SHOP, _resolve, blocks, python_blocks, run_block
from test_docs_review import _code_loggers

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SEMANTICS = ROOT / "docs" / "semantics.md"
RECIPES = ROOT / "docs" / "recipes.md"
#: The pages of the walk.
WALKED = [README, DOCS["router"], DOCS["asgi"], RECIPES, DOCS["observability"], SEMANTICS,
          DOCS["proxy-api"]]


def text(path: Path) -> str:
    return re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))


def _pages_whose_blocks_run() -> set[Path]:
    """The pages whose unmarked ```python blocks other tests run: those test_docs.py's
    ``test_python_blocks_run`` is parametrized with (read from the test itself, not restated
    here: a page dropped there fails the check below), README.md (``test_readme_python_blocks_run``
    runs every block) and recipes.md (test_docs_recipes.py runs every recipe and checks that
    no block lies outside one)."""
    marks: list[pytest.Mark] = getattr(test_docs.test_python_blocks_run, "pytestmark")
    (names,) = [m.args[1] for m in marks if m.name == "parametrize"]
    return {README, RECIPES, *(DOCS[n] for n in names)}


def test_every_walked_page_with_python_blocks_is_run() -> None:
    """A ```python block added to a page no doc test runs would drift unseen (semantics.md,
    whose examples are inline, is run by none)."""
    run = _pages_whose_blocks_run()
    for page in WALKED:
        runnable = [b for b in python_blocks(page) if b.marker is None]
        assert page in run or not runnable, (page.name, [b.line for b in runnable])


def _imported_names(code: str) -> list[tuple[str, str]]:
    """(module, name) for each ``from ingresslib[.x] import name`` and ``ingresslib.name``."""
    out: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ingresslib"):
            out += [(str(node.module), a.name) for a in node.names]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "ingresslib" and node.attr != "proxy"):
            out.append(("ingresslib", node.attr))
    return out


def test_names_the_examples_use_are_public() -> None:
    """What a user copies uses only the public API (``__all__`` of ingresslib and
    ingresslib.proxy, CONTRACT.md's names among them), never a ``_private`` module."""
    public = {"ingresslib": set(ingresslib.__all__),
              "ingresslib.proxy": set(ingresslib.proxy.__all__)}
    seen = 0
    for page in WALKED:
        for b in python_blocks(page):
            if b.marker is not None:  # synopses: not all of them Python
                continue
            for module, name in _imported_names(b.code):
                assert name in public.get(module, set()), (page.name, b.line, module, name)
                seen += 1
    assert seen >= 50
    assert _imported_names("from ingresslib._kube import Backoff\nx = ingresslib._kube") == [
        ("ingresslib._kube", "Backoff"), ("ingresslib", "_kube")]


def _public_callable(name: str) -> Any:
    """``name`` (``Router``, ``ingresslib.explain``, ``ProxyServer``) as ingresslib or
    ingresslib.proxy exports it; None for anything else (``router.route``: an instance's)."""
    short = name.removeprefix("ingresslib.proxy.").removeprefix("ingresslib.")
    for module in (ingresslib, ingresslib.proxy):
        if short in module.__all__:
            return getattr(module, short)
    return None


def test_inline_calls_of_the_other_pages_take_their_keywords() -> None:
    """test_docs.py checks `` `name(key=...)` `` in README, router, asgi, observability and API
    pages; recipes.md and semantics.md write them too."""
    checked = 0
    for page in (RECIPES, SEMANTICS):
        for name, args in re.findall(r"`([\w.]+)\(([^`()]*)\)`", text(page)):
            fn = _public_callable(name)
            keywords = re.findall(r"(\w+)=", args)
            if fn is None or not keywords:
                continue
            params = inspect.signature(fn).parameters
            for k in keywords:
                assert k in params, (page.name, name, k)
            checked += 1
    assert checked >= 5
    assert _public_callable("ProxyServer") is ingresslib.proxy.ProxyServer


def test_dotted_names_the_pages_write_exist() -> None:
    """Every ``ingresslib.a.b`` a walked page writes (prose too) is a module, class, function
    or attribute of the package, or one of the loggers the code logs on; besides those, the
    scope key ``ingresslib.decision`` and observability.md's ``ingresslib._name`` pattern (an
    annotation prefix, ``ingresslib.io/...``, is no name)."""
    allowed = _code_loggers() | {"ingresslib.decision", "ingresslib._name"}
    checked = 0
    for page in WALKED:
        for name in set(re.findall(r"\b(ingresslib(?:\.\w+)+)(?![\w/])",
                                   page.read_text("utf-8"))):
            if name.endswith((".md", ".py", ".pyx", ".pyi")) or name in allowed:
                continue
            assert _resolve(name) is not None, (page.name, name)
            checked += 1
    assert checked >= 20
    assert _resolve("ingresslib.proxy.ProxySettings.no_such_field") is None


# --- docs/router.md's synopsis ----------------------------------------------------------------


def _called(node: ast.Call) -> str | None:
    """``"Router"`` for ``ingresslib.Router(...)``, the method's name for ``router.NAME(...)``."""
    f = node.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        if f.value.id == "ingresslib" and f.attr == "Router":
            return "Router"
        if f.value.id == "router":
            return f.attr
    return None


def _value(node: ast.expr) -> tuple[bool, Any]:
    """(True, value) for a literal or a dotted name of a module (``time.monotonic``)."""
    try:
        return True, ast.literal_eval(node)
    except ValueError:
        pass
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        module = sys.modules.get(node.value.id)
        if module is not None and hasattr(module, node.attr):
            return True, getattr(module, node.attr)
    return False, None


def _synopsis_problems(code: str) -> list[str]:
    """What router.md's synopsis ``code`` says that the code does not: a call that does not
    bind to the signature, a literal argument that is not the default, a keyword of ``Router``
    not shown."""
    problems: list[str] = []
    calls = [(name, node) for node in ast.walk(ast.parse(code))
             if isinstance(node, ast.Call) and (name := _called(node)) is not None]
    for name, call in calls:
        fn = ingresslib.Router if name == "Router" else getattr(ingresslib.Router, name, None)
        if fn is None:
            problems.append(f"no Router.{name}")
            continue
        sig = inspect.signature(fn)
        positional = [None] * (len(call.args) + (name != "Router"))  # self for a method
        try:
            sig.bind(*positional, **{k.arg: None for k in call.keywords if k.arg})
        except TypeError as e:
            problems.append(f"{name}: {e}")
            continue
        for k in call.keywords:
            known, value = _value(k.value)
            # A literal shown is the default (a placeholder like {"name": factory} is not).
            if known and value != sig.parameters[str(k.arg)].default:
                problems.append(f"{name}({k.arg}={value!r}): default is "
                                f"{sig.parameters[str(k.arg)].default!r}")
        if name == "Router":
            shown = {k.arg for k in call.keywords}
            problems += [f"Router({p.name}=...) not shown"
                         for p in sig.parameters.values()
                         if p.default is not p.empty and p.name not in shown]
    if len(calls) < 9:
        problems.append(f"only {len(calls)} calls found")
    return problems


def _router_synopsis_code() -> str:
    (first, *_) = python_blocks(DOCS["router"])
    assert first.marker == "skip" and "ingresslib.Router(" in first.code
    return first.code


def test_router_synopsis_is_the_signatures() -> None:
    assert _synopsis_problems(_router_synopsis_code()) == []


def test_router_synopsis_check_is_live() -> None:
    """A default the page misstates, an argument the method does not take: both fail."""
    code = _router_synopsis_code()
    for old, new in [('load_balance="round_robin"', 'load_balance="ewma"'),
                     ("request=None)", "request=None, retries=3)")]:
        wrong = code.replace(old, new, 1)
        assert wrong != code and _synopsis_problems(wrong), new


def test_router_synopsis_attributes_exist() -> None:
    router = ingresslib.Router(ingresslib.parse_manifests(SHOP))
    read = {n.attr for n in ast.walk(ast.parse(_router_synopsis_code()))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "router"}
    assert {"table", "warnings", "no_endpoint"} <= read
    for attr in read:
        assert hasattr(router, attr), attr


# --- docs/asgi.md: the first block, and "Live updates" without a kubeconfig ------------


def _no_kubeconfig(monkeypatch: pytest.MonkeyPatch, home: Path) -> dict[str, str]:
    """The environment of a user without a cluster: no KUBECONFIG, an empty home, not in a pod."""
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    return dict(os.environ)


def _quoted_startup_error() -> str:
    m = re.search(r"uvicorn stops at startup with the reason \(`ERROR: ([^`]+)`, exit status "
                  r"(\d+)\)", text(DOCS["asgi"]))
    assert m is not None
    assert m.group(2) == "3"
    return m.group(1)


def _asgi_page_module(folder: Path) -> None:
    """asgi.md's unmarked blocks, pasted one after the other into ``mymodule.py``."""
    code = "\n".join(b.code for b in python_blocks(DOCS["asgi"]) if b.marker is None)
    assert "async def app_with_watch" in code
    (folder / "mymodule.py").write_text(code, encoding="utf-8")


@pytest.fixture
def asgi_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "shop.yaml").write_text(SHOP, encoding="utf-8")
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_asgi_first_block_keys_and_their_warning(
        asgi_folder: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """asgi.md's first block on the shop manifests: the keys are what ``ingresslib explain``
    prints (``backend service shop/api:80``); at the first request ``ingresslib.asgi`` warns
    once, naming the keys that mount nothing and the backend no key mounts (its 503)."""
    assert "(`backend service shop/api:80`)" in text(DOCS["asgi"])
    assert cli_main(["explain", "-f", "deploy/", "http://shop.example.com/cart"]) == 0
    assert "     backend service shop/api:80\n" in capsys.readouterr().out
    ns: dict[str, Any] = {"__name__": "mymodule"}
    first = python_blocks(DOCS["asgi"])[0]
    assert '"shop/api:80": api_app' in first.code
    run_block(first, ns, "asgi.md")
    caplog.set_level(logging.WARNING, logger="ingresslib.asgi")
    asgi_exchange(ns["app"], "shop.example.com", "/cart")
    canary = asgi_exchange(ns["app"], "shop.example.com", "/cart",
                           headers=[(b"x-canary", b"always")])
    assert canary[0]["status"] == 503  # "mount an app for it too"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "ingresslib.asgi"]
    for named in ("'shop/site:http', 'shop/admin' name no backend", "'shop/api-v2:80' have no app"):
        assert named in warning, warning


def test_asgi_watch_wrapper_under_uvicorn_exits_3(
        asgi_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvicorn")  # the page's own condition: an ASGI server installed
    env = _no_kubeconfig(monkeypatch, asgi_folder / "home")
    _asgi_page_module(asgi_folder)
    p = subprocess.Popen([PY, "-m", "uvicorn", "mymodule:app_with_watch", "--host",
                          "127.0.0.1", "--port", "0"], cwd=asgi_folder, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with kill_after(p, 30) as killed:
        err = stderr_until_exit(p, 30)
    assert not killed.is_set(), err
    assert p.returncode == 3, err
    assert f"ERROR:    {_quoted_startup_error()}\n" in err


# --- README §3: the ConfigMap block and the serve line ----------------------------------------


def _readme_section_3() -> tuple[str, str]:
    """(the serve command line, the ConfigMap YAML) of "### 3. As a reverse proxy"."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("### 3. As a reverse proxy") + 1
    end = lines.index("### 4. In a cluster") + 1
    mine = [b for b in blocks(README) if start < b.line < end]
    command = next(b for b in mine if b.lang == "" and b.code.startswith("ingresslib serve"))
    configmap = next(b for b in mine if b.lang == "yaml" and "kind: ConfigMap" in b.code)
    return command.code.replace("\\\n", " "), configmap.code


def test_readme_configmap_block_sets_what_it_says() -> None:
    _, yaml_text = _readme_section_3()
    cfg = _config.parse_config_data(dict(re.findall(r'^  ([a-z-]+): "([^"]*)"', yaml_text,
                                                    re.M)))
    assert len(cfg.settings.proxy_real_ip_cidr) == 1 and not cfg.warnings
    s = cfg.settings
    assert s.use_forwarded_headers is True
    assert [str(n) for n in s.proxy_real_ip_cidr] == ["10.0.0.0/8"]
    assert (s.proxy_body_size, s.proxy_read_timeout) == (8 * 1024 * 1024, 60.0)


@dataclasses.dataclass
class _Served:
    heads: list[str]  # serve's first stderr lines ("listening on ...", "metrics on ...")
    rest: str = ""    # the rest of stderr, once it exited
    stdout: str = ""


@contextlib.contextmanager
def _serve(command: str, cwd: Path, heads: int) -> Iterator[_Served]:
    """Run a documented ``ingresslib serve`` line in ``cwd``, its fixed 127.0.0.1 ports made
    ``:0`` (free ports: the CLI section says serve prints the real one; the documented ports
    may be taken on a shared machine; a line without ``--listen`` gets ``127.0.0.1:0`` in
    place of the default 127.0.0.1:8080); stopped with SIGTERM (bounded) when the block ends."""
    argv = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:0", command).split()
    assert argv[:2] == ["ingresslib", "serve"], argv
    if "--listen" not in argv:
        argv += ["--listen", "127.0.0.1:0"]
    # A documented line listening elsewhere (0.0.0.0, a bare port) would bind more than this
    # machine, or a fixed port: refused, not run.
    for flag, value in zip(argv, argv[1:]):
        assert not flag.endswith("-listen") or value == "127.0.0.1:0", (flag, value)
    p = subprocess.Popen([PY, "-m", "ingresslib", *argv[1:]], cwd=cwd, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    with kill_after(p, 30) as killed:
        served = _Served([p.stderr.readline() for _ in range(heads)])
        try:
            yield served
        finally:
            p.terminate()
            served.rest = stderr_until_exit(p, 20)
            served.stdout = p.stdout.read()
            p.stdout.close()
    assert not killed.is_set()
    assert p.returncode == 0, served.rest


def _get(url: str, host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


def _shop_folder(folder: Path, name: str = "deploy") -> Path:
    (folder / name).mkdir()
    (folder / name / "shop.yaml").write_text(SHOP, encoding="utf-8")
    return folder


def test_readme_serve_line_runs(tmp_path: Path) -> None:
    """The §3 line as written, in a folder holding ``deploy/`` and ``nginx-configmap.yaml``."""
    command, yaml_text = _readme_section_3()
    (_shop_folder(tmp_path) / "nginx-configmap.yaml").write_text(yaml_text, encoding="utf-8")
    assert "--config nginx-configmap.yaml" in command
    with _serve(command, tmp_path, 3) as served:
        assert [h.split(" http")[0] for h in served.heads] == [
            "listening on", "listening on", "metrics on"], served.heads
        assert served.heads[1].startswith("listening on https://127.0.0.1:")
        url = served.heads[0].split()[-1]
        assert _get(url + "/")[0] == 404  # no Host the rules name
    assert "WARNING" not in "".join(served.heads) + served.rest, served.rest


def test_observability_serve_line_runs(tmp_path: Path) -> None:
    """observability.md's first line: metrics and /healthz on their own listener, one JSON
    access-log object per request on stdout, the catch-all server's requests left out."""
    (command,) = [b.code.strip() for b in blocks(DOCS["observability"])
                  if b.code.startswith("ingresslib serve")]
    assert "--access-log json" in command and "-f manifests/" in command
    with _serve(command, _shop_folder(tmp_path, "manifests"), 2) as served:
        assert served.heads[0].startswith("listening on http://127.0.0.1:"), served.heads
        url = served.heads[0].split()[-1]
        metrics = served.heads[1].split()[-1]
        assert served.heads[1].startswith("metrics on http://127.0.0.1:")
        assert _get(url + "/no-rule", "shop.example.com")[0] == 404
        assert _get(url + "/", "nobody.test")[0] == 404  # the catch-all server: not logged
        assert _get(metrics.removesuffix("/metrics") + "/healthz") == (200, "ok")
        assert "nginx_ingress_controller_requests{" in _get(metrics)[1]
    (line,) = served.stdout.splitlines()
    entry = json.loads(line)
    assert (entry["host"], entry["status"], entry["request"]) == (
        "shop.example.com", 404, "GET /no-rule HTTP/1.1")


def test_observability_set_hosts_expression_is_what_serve_counts() -> None:
    """observability.md's inline ``metrics.set_hosts({...})`` plus ``set(router.table.aliases)``,
    evaluated as written, gives the hosts ``serve`` counts (``_metrics.hosts_of``): a canary's
    host left out, the oldest Ingress's ``server-alias`` names in."""
    page = text(DOCS["observability"])
    m = re.search(r"`metrics\.set_hosts\((\{rule\.host for .*?\})\)`", page)
    assert m is not None and "add `set(router.table.aliases)`" in page
    res = ingresslib.parse_manifests(SHOP + "---\n" + _ingress(
        [("/", "Prefix", "api")], host="canary-only.test", name="only-canary").replace(
        "metadata: {name: only-canary}", "metadata: {name: only-canary, annotations: "
        "{nginx.ingress.kubernetes.io/canary: 'true'}}") + "---\n" + _ingress(
        [("/", "Prefix", "web")], host="main.test", name="aliased").replace(
        "metadata: {name: aliased}", "metadata: {name: aliased, annotations: "
        "{nginx.ingress.kubernetes.io/server-alias: 'alias.test'}}"))
    router = ingresslib.Router(res)
    shown = eval(m.group(1), {"router": router}) | set(router.table.aliases)  # noqa: S307
    assert shown == _metrics.hosts_of(res, router.table.served) == {
        "shop.example.com", "main.test", "alias.test"}


# --- docs/semantics.md's inline examples ------------------------------------------------------


def _ingress(paths: list[tuple[str, str, str]], host: str | None = None,
             name: str = "web") -> str:
    rules = "".join(f"      - {{path: '{p}', pathType: {t}, backend: {{service: {{name: {svc}, "
                    f"port: {{number: 80}}}}}}}}\n" for p, t, svc in paths)
    rule = f"  - host: '{host}'\n    http:\n" if host else "  - http:\n"
    return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\n"
            f"spec:\n  rules:\n{rule}      paths:\n{rules}")


def _quoted(page: str, *spans: str) -> None:
    for span in spans:
        assert f"`{span}`" in page, span


def test_semantics_2_path_validation_examples() -> None:
    page = text(SEMANTICS)
    _quoted(page, "//", "/./", "/../", "%2f", "%2F", "/.", "/..", "/.well-known", "/foo/..bar")
    for path in ("/.well-known", "/foo/..bar"):  # "are fine"
        for kind in ("Exact", "Prefix"):
            ingresslib.parse_manifests(_ingress([(path, kind, "web")]))
    for path in ("/a//b", "/a/./b", "/a/../b", "/a%2fb", "/a%2Fb", "/a/.", "/a/..", "rel"):
        for kind in ("Exact", "Prefix"):
            with pytest.raises(ingresslib.ValidationError):
                ingresslib.parse_manifests(_ingress([(path, kind, "web")]))
    # ImplementationSpecific: non-empty means it starts with `/`; anything else goes.
    ingresslib.parse_manifests(_ingress([("/a//b", "ImplementationSpecific", "web")]))
    with pytest.raises(ingresslib.ValidationError):
        ingresslib.parse_manifests(_ingress([("rel", "ImplementationSpecific", "web")]))


def test_semantics_4_host_groups() -> None:
    page = text(SEMANTICS)
    _quoted(page, "*.foo.com", "bar.foo.com", "foo.com", "a.bar.foo.com")
    res = ingresslib.parse_manifests("---\n".join([
        _ingress([("/", "Prefix", "wild")], host="*.foo.com", name="wild"),
        _ingress([("/", "Prefix", "any")], name="hostless"),
        _ingress([("/z", "Prefix", "bar")], host="bar.foo.com", name="bar")]))
    table = ingresslib.RouteTable.build(res)

    def service(host: str) -> str | None:
        m = table.match(host, "/")
        return None if m is None else m.service

    assert service("x.foo.com") == "wild"              # covers exactly one first label
    assert service("foo.com") == service("a.bar.foo.com") == "any"
    assert service("X.FOO.COM.:8080") == "wild"        # lower-cased, port and one dot stripped
    assert service("[::1]:80") == "any"                # an IPv6 literal never equals a host
    assert service("bar.foo.com") is None              # no fall-through once a group is chosen


def test_semantics_4_paths_and_precedence() -> None:
    page = text(SEMANTICS)
    _quoted(page, "/foo", "/foo/", "/foo/bar", "/foobar")
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(_ingress([
        ("/foo", "Prefix", "prefix"), ("/foo", "Exact", "exact"), ("/foo/", "Prefix", "slash"),
        ("/x/", "Exact", "x")])))

    def hit(path: str) -> str | None:
        m = table.match("h.test", path)
        return None if m is None else m.service

    assert hit("/foo") == "exact"                      # equal length: Exact beats Prefix
    assert hit("/foo/") == hit("/foo/bar") == "slash"  # Prefix `/foo/` beats Prefix `/foo`
    assert hit("/foobar") is None                      # element-wise, not string prefix
    assert (hit("/x/"), hit("/x")) == ("x", None)      # Exact: a trailing slash counts


def test_semantics_5_canonical_path_examples() -> None:
    page = text(SEMANTICS)
    _quoted(page, "%61", "%2e", "..;")
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(
        _ingress([("/a", "Exact", "a"), ("/b/c", "Exact", "c")])))
    assert table.match("h.test", "/%61") is not None            # `%61` -> `a`
    assert table.match("h.test", "/b/x/%2e%2e/c") is not None   # `%2e` -> `.`, then resolved
    assert table.match("h.test", "/b//c") is not None           # `//` merged
    for bad in ("/..", "/a/..;", "/a%2Fb", "/a%5c", "/a%00", "/a%zz", "/a%c3%28"):
        with pytest.raises(ingresslib.BadRequestError) as info:
            table.match("h.test", bad)
        assert info.value.status_hint == 400, bad


def test_semantics_settings_defaults() -> None:
    """§9's limits and §10's HSTS, as ``ProxySettings`` has them."""
    page = text(SEMANTICS)
    assert ("request line 8 KiB, one header 8 KiB, all headers 32 KiB, 100 headers" in page)
    assert "HSTS (`max-age=31536000; includeSubDomains`) by default" in page
    assert "(default 3 tries total" in page
    s = ingresslib.proxy.ProxySettings()
    assert (s.max_request_line, s.max_header_line, s.max_headers_size, s.max_headers) == (
        8192, 8192, 32768, 100)
    assert (s.hsts, s.hsts_max_age, s.hsts_include_subdomains) == (True, 31536000, True)
    assert s.proxy_next_upstream_tries == 3


# --- docs/asgi.md: the rate limits' clock is an attribute -------------------------------------


def test_asgi_limit_clock_is_the_attribute_the_page_names() -> None:
    """asgi.md said "timed by `limit_clock` (default `time.monotonic`)" beside the constructor's
    options, where a user reads ``IngressASGI(..., limit_clock=...)``: a ``TypeError``. It is
    ``app.limit_clock``, an attribute read per request."""
    assert "timed by `app.limit_clock` (an attribute, not a constructor argument" in \
        text(DOCS["asgi"])
    res = ingresslib.parse_manifests(_ingress([("/", "Prefix", "web")], host="a.test").replace(
        "metadata: {name: web}",
        "metadata: {name: web, annotations: {nginx.ingress.kubernetes.io/limit-rps: '1', "
        "nginx.ingress.kubernetes.io/limit-burst-multiplier: '1'}}"))

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with pytest.raises(TypeError):
        ingresslib.IngressASGI(res, backends={"default/web": ok},  # type: ignore[call-arg]
                               limit_clock=lambda: 0.0)  # what a user would write
    app = ingresslib.IngressASGI(res, backends={"default/web": ok})
    assert app.limit_clock is time.monotonic
    now = [100.0]
    app.limit_clock = lambda: now[0]

    def status() -> int:
        return int(asgi_exchange(app, "a.test", "/")[0]["status"])

    # 1 r/s, burst 1 (nginx's `limit_req ... burst=1 nodelay`: one more at once): the third
    # request in the same instant is refused, one a second later passes, one more is refused:
    # the time is the assigned clock's.
    assert [status(), status(), status()] == [200, 200, 503]
    now[0] += 1.0
    assert [status(), status()] == [200, 503]


# --- docs/router.md: R10's example ---------------------------------------------------------------


def test_router_r10_two_rules_share_the_rotation() -> None:
    """R10: "`/a` and `/b` alternating over 3 endpoints give 1, 2, 2, 3, 3, 1"."""
    m = re.search(r"`/a` and `/b` alternating over 3 endpoints give ((?:\d, )+\d)\)",
                  text(DOCS["router"]))
    assert m is not None
    res = ingresslib.parse_manifests(_ingress([("/a", "Prefix", "web"), ("/b", "Prefix", "web")])
                                     + """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}, {addresses: [10.0.0.3]}]
""")
    router = ingresslib.Router(res)
    got = []
    for path in ["/a", "/b"] * 3:
        d = router.route("GET", "x.test", path)
        assert d is not None and d.endpoint is not None
        got.append(d.endpoint[0].rsplit(".", 1)[1])
    assert ", ".join(got) == m.group(1)
