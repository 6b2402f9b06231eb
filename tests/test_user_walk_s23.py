"""A new user's walk through the docs (session 23): what the other doc tests leave out.

tests/test_docs.py runs the ```python blocks of README.md and the docs pages, parses their
command lines and checks many claims; tests/test_docs_recipes.py runs docs/recipes.md. This
file covers what a user meets besides them, each found by following the README from a fresh
clone:

- the inline commands and code spans of the prose (the sdist command, cluster.md's
  ``from ingresslib._kube import ...`` lines and the expressions built with them);
- every command-line option, which the README's CLI section must name (``--help`` lists more
  than the synopsis lines show);
- cross references between pages (``rows R1-RN``);
- the ``--version --verbose`` line the install block shows, and ``help(ingresslib)`` listing
  every public name the docs use;
- cluster.md's recipe for the official ``kubernetes`` client (marked ``doctest: skip``: it needs
  that client and a cluster), run against a small stand-in for the client's modules.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import pydoc
import re
import sys
import threading
import time
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib._cli import build_parser, main as cli_main

from test_docs import blocks

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "ingresslib" / "proxy" / "API.md"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]


def _folded(path: Path) -> str:
    """The page with its line breaks (and a list item's indentation) folded into one space, so a
    code span broken over two lines reads as written."""
    return re.sub(r"\s*\n\s*", " ", path.read_text("utf-8"))


def _spans(path: Path) -> list[str]:
    """The inline code spans of the page's prose (fenced blocks left out)."""
    text = path.read_text("utf-8")
    text = re.sub(r"(?ms)^\s*```.*?^\s*```\s*$", "", text)
    return [m.strip() for m in re.findall(r"`([^`]+)`", re.sub(r"\s*\n\s*", " ", text))]


def _makefile_recipes() -> dict[str, str]:
    """Makefile target -> its recipe lines, joined."""
    out: dict[str, str] = {}
    target = None
    for line in (ROOT / "Makefile").read_text("utf-8").splitlines():
        m = re.match(r"^([\w.-]+):", line)
        if m:
            target = m.group(1)
            out[target] = ""
        elif target and line.startswith("\t"):
            out[target] += line + "\n"
        elif not line.strip():
            continue
        else:
            target = None
    return out


# --- the README's commands -----------------------------------------------------------------------


def test_the_command_the_readme_says_builds_the_sdist_does() -> None:
    """README's install block said "`make package` builds one" (the sdist), but `make package`
    is an editable install into .venv: no sdist anywhere. Every `make TARGET` named on a line
    about the sdist must build one; the install block names the command that does."""
    recipes = _makefile_recipes()
    for line in README.read_text("utf-8").splitlines():
        if "sdist" not in line:
            continue
        for target in re.findall(r"`make ([\w.-]+)`", line):
            assert target in recipes, f"README names `make {target}`, which the Makefile lacks"
            assert "sdist" in recipes[target] or "python -m build" in recipes[target], (
                f"README: {line.strip()!r}: `make {target}` builds no sdist:\n{recipes[target]}")
    install = next(b for b in blocks(README) if b.lang == "sh" and "pip install ." in b.code)
    assert "pip install build && python -m build`" in install.code
    assert f"dist/ingresslib-{VERSION}.tar.gz" in install.code
    # examples/deploy/Dockerfile builds the same way (its `build` install included).
    docker = (ROOT / "examples" / "deploy" / "Dockerfile").read_text("utf-8")
    assert "pip install --no-cache-dir build" in docker and "python -m build" in docker


def test_the_opening_names_what_the_two_commands_need() -> None:
    """"Both commands start from nothing but python3, make and a C compiler": `make demo` also
    needs the `venv` module (`python3 -m venv`: Debian/Ubuntu ship it apart, python3-venv) and
    the Python headers (the extensions include Python.h; python3-dev), and fails without them,
    since the Makefile makes the compiled matcher required."""
    opening = _folded(README).split("## Installing")[0]
    assert "INGRESSLIB_REQUIRE_EXTENSIONS=1" in _makefile_recipes()["package"]
    assert "-m venv" in (ROOT / "Makefile").read_text("utf-8")
    for need in ("headers", "venv", "python3-dev", "python3-venv"):
        assert need in opening, need


def _options() -> dict[str, dict[str, argparse.Action]]:
    """Subcommand -> long option -> its argparse action."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, dict[str, argparse.Action]] = {}
    for name, sp in sub.choices.items():
        out[name] = {}
        for action in sp._actions:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs and longs != ["--help"]:
                out[name][longs[0]] = action
    return out


def test_the_readme_names_every_option_of_every_command() -> None:
    """`ingresslib serve --help` lists --ingress-class, --controller, --access-log, --log-level
    and --max-connections, and `demo --help` --seed: the README named none of them, so a
    reader of its CLI section could not know that `serve` filters by class (the library
    section's `ingress_class="nginx"`) or how to turn the access log off."""
    text = README.read_text("utf-8")
    missing = [f"{cmd} {opt}" for cmd, opts in _options().items() for opt, action in opts.items()
               if not any(re.search(rf"{re.escape(o)}(?![\w-])", text)
                          for o in action.option_strings)]
    assert not missing, f"options no line of README.md names: {missing}"


def test_the_readme_option_defaults_are_the_parsers() -> None:
    """Each "`--option ...` (default X" in README.md is that option's default in the parser."""
    opts = _options()
    checked = 0
    for m in re.finditer(r"`(--[\w-]+)[^`]*` \(default `?([\w.]+)`?", _folded(README)):
        option, said = m.group(1), m.group(2)
        defaults = {str(a.default) for o in opts.values() for name, a in o.items()
                    if name == option}
        assert defaults, f"README gives a default for {option}, which no command has"
        normal = {d[:-2] if d.endswith(".0") else d for d in defaults}
        assert said in normal, f"README: {option} (default {said}); the parser's: {defaults}"
        checked += 1
    # (--shutdown-timeout's default is the ConfigMap's worker-shutdown-timeout, else 10, since
    # session 30, and --max-connections' its max-worker-connections, else 10000, since session
    # 31: no longer in this form)
    assert checked >= 2


def test_version_verbose_prints_the_line_the_install_block_shows(
        capsys: pytest.CaptureFixture[str]) -> None:
    install = next(b for b in blocks(README) if b.lang == "sh" and "--version --verbose" in b.code)
    shown = re.search(r'"(ingresslib \S+ \(matcher: \w+, picker: \w+\))"', install.code)
    assert shown is not None
    assert cli_main(["--version", "--verbose"]) == 0
    line = capsys.readouterr().out.strip()
    pattern = re.escape(shown.group(1)).replace("cython", r"(cython|python)")
    assert re.fullmatch(pattern.replace(re.escape("0.1.0"), re.escape(VERSION)), line), line
    assert f"matcher: {ingresslib.MATCHER}" in line


def test_help_lists_every_public_name_the_docs_use() -> None:
    """`python -c "import ingresslib; help(ingresslib)"` shows every name of `__all__` (some are
    imported lazily), and every `ingresslib.NAME` / `from ingresslib import NAME` of the docs
    is one of them (or a submodule, a logger or a scope key)."""
    shown = pydoc.render_doc(ingresslib, renderer=pydoc.plaintext)
    for name in ingresslib.__all__:
        assert re.search(rf"(?m)^    (class |async |){re.escape(name)}\b", shown), name
    used: set[str] = set()
    for path in [README, *DOCS]:
        text = path.read_text("utf-8")
        used |= set(re.findall(r"\bingresslib\.([A-Z]\w*|[a-z]\w*(?=\())", text))
        for names in re.findall(r"from ingresslib import (?:\(([\w,\s]+)\)|([\w, ]+))", text):
            used |= {n.strip() for n in ",".join(names).split(",") if n.strip()}
    assert used - set(ingresslib.__all__) == set(), used - set(ingresslib.__all__)


# --- cross references ----------------------------------------------------------------------------


def test_row_ranges_name_the_last_row_of_router_md() -> None:
    """docs/recipes.md said "rows R1-R30" of router.md, whose table goes on to R32."""
    rows = [int(n) for n in re.findall(r"(?m)^\| R(\d+) \|", (ROOT / "docs" / "router.md")
                                       .read_text("utf-8"))]
    assert rows == list(range(1, len(rows) + 1))
    for path in [README, *DOCS]:
        for first, last in re.findall(r"rows R(\d+)-R(\d+)", path.read_text("utf-8")):
            assert (int(first), int(last)) == (1, rows[-1]), f"{path.name}: rows R{first}-R{last}"


# --- docs/cluster.md's inline code ---------------------------------------------------------------


def test_cluster_md_trimming_code_runs_with_the_imports_it_names() -> None:
    """cluster.md's "No Secret access at all" item names `auth_secret_refs(...)` for
    `auth_refs` but imported only `WATCHED_KINDS` and `AUTH_SECRETS`: a user pasting its
    import lines got a NameError. Run its import lines, then each expression it builds."""
    page = ROOT / "docs" / "cluster.md"
    spans = _spans(page)
    ns: dict[str, Any] = {"ClusterWatcher": ingresslib.ClusterWatcher}  # the public name
    imports = [s for s in spans if s.startswith("from ingresslib")]
    assert imports
    for line in imports:
        exec(line, ns)  # noqa: S102 - the page's own import line
    exprs = [s for s in spans if re.search(r"WATCHED_KINDS|AUTH_SECRETS|auth_secret_refs", s)
             and not s.startswith("from ")]
    assert len(exprs) >= 3, exprs
    res = ingresslib.parse_manifests("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/auth-type: basic
    nginx.ingress.kubernetes.io/auth-secret: web-users
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
""")
    for expr in exprs:
        code = expr.replace("...,", "lambda resources: None,")
        keyword = re.fullmatch(r"(\w+)=(.*)", code, re.S)
        if keyword:  # `kinds=...`, `auth_refs=...`: a keyword argument of ClusterWatcher
            value = eval(keyword.group(2), ns)  # noqa: S307 - the page's own expression
            kw = {keyword.group(1): value}
            ingresslib.ClusterWatcher(lambda r: None, **kw)
            if keyword.group(1) == "auth_refs":
                assert set(value(res)) == {("shop", "web-users")}
            continue
        value = eval(code, ns)  # noqa: S307 - a name, or a ClusterWatcher(...) call
        assert isinstance(value, (ingresslib.ClusterWatcher, tuple, type(ns["AUTH_SECRETS"]))), (
            code, value)


# --- docs/cluster.md's recipe for the official kubernetes client ---------------------------------


class _Model:
    """What the official client's models give the recipe: ``to_dict()`` (snake_case, None for
    unset fields) and attribute access to ``metadata.resource_version``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data


class _Stop(SystemExit):
    """Ends a recipe thread quietly at the test's end (threads ignore SystemExit)."""


class _FakeClient:
    """The slice of ``kubernetes`` the recipe calls, fed from ``objects`` and ``events``."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.stop = threading.Event()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def lister(self, kind: str) -> Any:
        def list_fn(**kwargs: Any) -> Any:
            if self.stop.is_set():
                raise _Stop
            self.calls.append((kind, kwargs))
            listing = types.SimpleNamespace(
                items=[_Model(o) for o in self.objects.get(kind, [])],
                metadata=types.SimpleNamespace(resource_version="1"))
            return listing
        list_fn.kind = kind  # type: ignore[attr-defined]
        return list_fn

    def modules(self) -> dict[str, types.ModuleType]:
        fake = self

        class ApiException(Exception):
            def __init__(self, status: int) -> None:
                super().__init__(status)
                self.status = status

        class Watch:
            def stream(self, list_fn: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
                assert kwargs.pop("resource_version") == "1"
                for etype, obj in fake.events.get(list_fn.kind, []):
                    yield {"type": etype, "object": _Model(obj)}
                fake.stop.wait()
                raise _Stop

        def api(**methods: str) -> Any:
            return lambda: types.SimpleNamespace(
                **{m: fake.lister(kind) for m, kind in methods.items()})

        client = types.ModuleType("kubernetes.client")
        client.ApiException = ApiException  # type: ignore[attr-defined]
        client.NetworkingV1Api = api(  # type: ignore[attr-defined]
            list_ingress_for_all_namespaces="Ingress", list_ingress_class="IngressClass")
        client.CoreV1Api = api(  # type: ignore[attr-defined]
            list_service_for_all_namespaces="Service",
            list_secret_for_all_namespaces="Secret")
        client.DiscoveryV1Api = api(  # type: ignore[attr-defined]
            list_endpoint_slice_for_all_namespaces="EndpointSlice")
        config = types.ModuleType("kubernetes.config")
        config.load_incluster_config = lambda: None  # type: ignore[attr-defined]
        config.load_kube_config = lambda: None  # type: ignore[attr-defined]
        watch = types.ModuleType("kubernetes.watch")
        watch.Watch = Watch  # type: ignore[attr-defined]
        top = types.ModuleType("kubernetes")
        top.client, top.config, top.watch = client, config, watch  # type: ignore[attr-defined]
        return {"kubernetes": top, "kubernetes.client": client, "kubernetes.config": config,
                "kubernetes.watch": watch}


def _snake_ingress(name: str, service: str) -> dict[str, Any]:
    """An Ingress as the official client's ``V1Ingress.to_dict()`` gives it."""
    return {"api_version": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "shop", "annotations": None,
                         "labels": None, "resource_version": "1", "uid": None,
                         "creation_timestamp": None},
            "spec": {"ingress_class_name": None, "tls": None, "rules": None,
                     "default_backend": {"resource": None, "service": {
                         "name": service, "port": {"name": None, "number": 80}}}},
            "status": None}


def test_cluster_md_official_client_recipe_follows_lists_and_watches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = [b for b in blocks(ROOT / "docs" / "cluster.md")
                if b.marker == "skip" and "from kubernetes import" in b.code]
    fake = _FakeClient()
    fake.objects["Ingress"] = [_snake_ingress("web", "web")]
    fake.events["Ingress"] = [("ADDED", _snake_ingress("api", "api")),
                              ("DELETED", _snake_ingress("web", "web"))]
    for name, module in fake.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    previous = threading.excepthook

    def quiet_stop(args: Any) -> None:  # the recipe's threads, ended by the test
        if args.exc_type is not _Stop:
            previous(args)

    monkeypatch.setattr(threading, "excepthook", quiet_stop)
    ns: dict[str, Any] = {"__name__": "cluster_recipe"}
    try:
        exec(compile(block.code, "cluster.md", "exec"), ns)  # noqa: S102 - the page's recipe
        store = ns["store"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
                {k for k, _ in fake.calls} != {"Ingress", "IngressClass", "Service",
                                               "EndpointSlice", "Secret"}
                or {i.metadata.name for i in store.snapshot().ingresses} != {"api"}):
            time.sleep(0.01)
        # The selectors the recipe passes, as ClusterWatcher asks for them.
        calls = dict(fake.calls)
        assert calls["EndpointSlice"] == {"label_selector": "kubernetes.io/service-name"}
        assert calls["Secret"] == {"field_selector": "type=kubernetes.io/tls"}

        async def swap_once() -> None:  # swap_loop's first round
            import asyncio
            task = asyncio.create_task(ns["swap_loop"]())
            await asyncio.sleep(0.3)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        import asyncio
        asyncio.run(swap_once())
        router = ns["router"]
        d = router.route("GET", "any.example", "/")
        assert d is not None and d.service == "api" and d.match.ingress == "shop/api"
    finally:
        fake.stop.set()
        for t in threading.enumerate():
            if t.name.endswith("(follow)"):
                t.join(5)
                assert not t.is_alive()


def test_cluster_md_official_client_recipe_is_valid_python_naming_real_calls() -> None:
    """The recipe's ingresslib calls exist with the arguments it passes."""
    (block,) = [b for b in blocks(ROOT / "docs" / "cluster.md")
                if b.marker == "skip" and "from kubernetes import" in b.code]
    tree = ast.parse(block.code)
    store = ingresslib.ResourceStore()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "store"):
            method = getattr(store, node.func.attr)
            import inspect
            sig = inspect.signature(method)
            sig.bind(*[None] * len(node.args), **{k.arg: None for k in node.keywords if k.arg})


# --- docs/recipes.md -----------------------------------------------------------------------------


def test_the_test_suite_recipe_runs_pasted_alone(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The "in your own test suite" recipe is code to paste into a test module, without the
    page's helpers: it used `ingresslib` without importing it (NameError)."""
    from test_docs_recipes import RECIPES

    manifests, *rest = RECIPES["test-suite"]
    (code,) = [b for b in rest if b.lang == "python"]
    (tmp_path / "recipe.yaml").write_text(manifests.code, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ns: dict[str, Any] = {"__name__": "test_my_manifests"}
    exec(compile(code.code, "recipes.md[test-suite]", "exec"), ns)  # noqa: S102
    assert ns["doc"]["decision"]["endpoint"] == "10.0.0.4:9000"


def test_the_exact_split_claims_cite_the_weight_split_row() -> None:
    """recipes.md: "The canary split is exact over every window ... ([R3](...))": R3 is
    `canary-weight-total`; the exact split is R4."""
    router_md = (ROOT / "docs" / "router.md").read_text("utf-8")
    (split_row,) = [r for r, text in re.findall(r"(?m)^\| (R\d+) \|(.*)$", router_md)
                    if "exact over every window" in text]
    cited = 0
    for path in [README, *DOCS]:
        if path.name == "router.md":
            continue
        text = re.sub(r"(?ms)^\s*```.*?^\s*```\s*$", "", path.read_text("utf-8"))
        for para in re.split(r"\n\s*\n", text):
            para = re.sub(r"\s+", " ", para)
            if re.search(r"exact over every window|splits exactly", para) and re.search(
                    r"\bR\d+\b", para) and not para.lstrip().startswith("|"):
                refs = set(re.findall(r"\bR\d+\b", para))
                assert split_row in refs, (path.name, para[:160])
                cited += 1
    assert cited >= 2
