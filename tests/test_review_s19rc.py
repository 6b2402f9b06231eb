"""Session 19 review (R19c) of two "pure move" splits: proxy/_connection.py into _chunked,
_h11_reader, _response_head and _request (b1aa6d6), and _asgi.py into _asgi_scan, _asgi_reply,
_asgi_lifespan and _asgi_mounts (c8e2da2, ``_MountReport`` a new base of IngressASGI)."""

from __future__ import annotations

import ast
import dis
import functools
import importlib
import importlib.util
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import h11
import pytest

import ingresslib
from ingresslib.proxy import _chunked, _connection
from ingresslib.proxy._h11_reader import _H11Reader
from tests._proxy_harness import ProxyPair, status_of

ROOT = Path(__file__).resolve().parent.parent

#: The modules of the two splits: what the moved code reads, and where tests patch it.
SPLIT = ["ingresslib.proxy._connection", "ingresslib.proxy._chunked",
         "ingresslib.proxy._h11_reader", "ingresslib.proxy._request",
         "ingresslib.proxy._response_head", "ingresslib._asgi", "ingresslib._asgi_scan",
         "ingresslib._asgi_reply", "ingresslib._asgi_lifespan", "ingresslib._asgi_mounts"]


# --- 1. IngressASGI's annotations resolve -------------------------------------------------------


def test_defect_type_hints_of_ingress_asgi_resolve() -> None:
    # DEFECT (c8e2da2): ``_MountReport`` declared what it reads of the app as class
    # annotations (``backends: dict[str, ASGIApp]``, ``backend_for: Callable[...]``) whose
    # names its module imports for type checkers only (``ASGIApp`` lives in ``_asgi``, which
    # imports ``_asgi_mounts``): ``typing.get_type_hints(ingresslib.IngressASGI)`` -- what
    # dependency-injection containers, cattrs, Sphinx and the like call on a class -- raised
    # "NameError: name 'ASGIApp' is not defined"; before the split it answered.
    hints = typing.get_type_hints(ingresslib.IngressASGI)
    assert "router" in hints
    for cls in ingresslib.IngressASGI.__mro__:
        inspect.get_annotations(cls, eval_str=True)


def test_guard_the_mount_report_base_sets_no_class_attribute() -> None:
    # guard: what ``_MountReport`` declares is no class attribute that would shadow, or stand
    # in for, what IngressASGI sets on the instance.
    from ingresslib._asgi_mounts import _MountReport

    for name in ("router", "backends", "fallback", "_mount_warning", "backend_for"):
        assert name not in vars(_MountReport), name
    app = ingresslib.IngressASGI(ingresslib.parse_manifests(""), backends={})
    assert app.backends == {} and app.fallback is None and app._mount_warning is None


# --- 2. monkeypatch targets reach the code they mean to -------------------------------------


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to an ingresslib module anywhere in ``tree`` (``import a.b as c``,
    ``from a import b as c``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ingresslib") and a.asname:
                    out[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.startswith("ingresslib"):
            package = importlib.import_module(node.module)
            for a in node.names:
                if isinstance(getattr(package, a.name, None), types.ModuleType) or (
                        hasattr(package, "__path__")
                        and importlib.util.find_spec(f"{node.module}.{a.name}") is not None):
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def patch_targets(source: str) -> list[tuple[str, str, int]]:
    """(module, name, line) of every ``monkeypatch.setattr(<module>, "<name>", ...)`` in
    ``source`` whose first argument names one of ``SPLIT`` (through an import alias, or
    dotted), and of ``monkeypatch.setattr("<module>.<name>", ...)``."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "setattr" and _dotted(node.func.value) == "monkeypatch"
                and node.args):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            module, _, name = first.value.rpartition(".")
        elif len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and \
                isinstance(node.args[1].value, str):
            dotted = _dotted(first)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            module = aliases.get(head, head) + (f".{rest}" if rest else "")
            name = node.args[1].value
        else:
            continue
        if module in SPLIT:
            found.append((module, name, node.lineno))
    return found


@functools.cache
def _globals_read(module: types.ModuleType) -> frozenset[str]:
    """The global names any code of ``module`` reads (compiled once per module: the guard
    below asks for the same few modules from every test file)."""
    names: set[str] = set()

    def walk(code: types.CodeType) -> None:
        for ins in dis.get_instructions(code):
            if ins.opname == "LOAD_GLOBAL":
                names.add(ins.argval)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const)

    assert module.__file__ is not None
    walk(compile(Path(module.__file__).read_text(), module.__file__, "exec"))
    return frozenset(names)


def unread_targets(source: str) -> list[tuple[str, str, int]]:
    """The patch targets of ``source`` that no code of their module reads: the patch
    succeeds and changes nothing (a name moved out, left behind as a re-export)."""
    return _unread(patch_targets(source))


def _unread(targets: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [(m, n, line) for m, n, line in targets
            if n not in _globals_read(importlib.import_module(m))]


def test_guard_every_patch_of_a_split_module_is_read_there() -> None:
    # guard: ``monkeypatch.setattr(_connection, "X", ...)`` where X is only a re-export
    # (``_MAX_CHUNK_SIZE``, ``_ChunkedReader``, ``_RequestIds``...) would pass and test
    # nothing: every such target in tests/ and benchmarks/ must be a global its module reads.
    stale = []
    seen = 0
    for path in sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        if path.name == Path(__file__).name:
            continue
        source = path.read_text()
        if "monkeypatch" not in source:
            continue
        targets = patch_targets(source)  # one parse per file: the guard reads every test file
        seen += len(targets)
        stale += [(path.name, *t) for t in _unread(targets)]
    assert not stale, stale
    assert seen >= 5  # the checker finds the patches it is meant to (formatdate, has_control...)


def test_guard_the_checker_flags_a_patch_of_a_re_export() -> None:
    # guard: the check above can fail: a re-export ``_connection`` keeps for tests is no
    # global its code reads, and a counter patched there counts nothing.
    source = ("from ingresslib.proxy import _connection\n"
              "import ingresslib.proxy._connection as core\n"
              "def test(monkeypatch):\n"
              "    monkeypatch.setattr(_connection, '_MAX_CHUNK_SIZE', 5)\n"
              "    monkeypatch.setattr(core, '_RequestIds', None)\n"
              "    monkeypatch.setattr(core, 'formatdate', None)\n"
              "    monkeypatch.setattr('ingresslib._asgi.reply_type', None)\n")
    assert [(m, n) for m, n, _ in unread_targets(source)] == [
        ("ingresslib.proxy._connection", "_MAX_CHUNK_SIZE"),
        ("ingresslib.proxy._connection", "_RequestIds")]


HEAD = b"POST /api HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_guard_a_request_chunk_line_is_checked_by_chunked_has_control(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # guard: tests/test_review_proxy_s17.py counts the chunk-line bytes ``has_control`` looks
    # at through ``_chunked.has_control``; patched on ``_connection`` (its target before the
    # split, still a name there: the response checks read it) the count was 3 for a line of
    # 8,000 bytes and the test passed. The bytes of a trickled line are all looked at here.
    looked = [0]
    real = _chunked.has_control  # type: ignore[attr-defined]

    def counting(value: bytes) -> bool:
        looked[0] += len(value)
        return real(value)

    monkeypatch.setattr(_chunked, "has_control", counting)
    p = ProxyPair()
    p.send(HEAD)
    line = b"5;" + b"a" * 1_000 + b"\r\nhello\r\n0\r\n\r\n"
    out = b"".join(p.send(line[i:i + 1]) for i in range(len(line)))
    assert status_of(out) in (200, 404, 503)
    assert looked[0] >= 1_000


def test_guard_the_upstream_chunk_checks_read_chunked_globals(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # guard: tests/test_review3_s16.py counts the upstream side's scans through
    # ``_chunked._bad_chunk_line`` and the trailer reader's ``_trailer_any``: each is called
    # when an upstream's chunked body with trailers is read.
    calls: dict[str, int] = {}

    def counted(name: str, fn: Any) -> Any:
        def run(*args: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return fn(*args)
        return run

    monkeypatch.setattr(_chunked, "_bad_chunk_line", counted("_bad_chunk_line",
                                                             _chunked._bad_chunk_line))
    monkeypatch.setattr(_chunked, "_trailer_any", counted("_trailer_any",
                                                          _chunked._trailer_any))
    r = _H11Reader(True, 1 << 20)
    r.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n")
    events = []
    while (event := r.next_event()) is not h11.NEED_DATA and event is not h11.PAUSED:
        events.append(type(event))
    assert events[-1] is h11.EndOfMessage
    assert calls.keys() == {"_bad_chunk_line", "_trailer_any"}, calls


def test_guard_connection_reads_its_patched_timer_and_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # guard: tests/test_server.py patches ``_connection._DISCARD_TIMEOUT`` and
    # tests/test_proxy_connection.py ``_connection.formatdate``: both still reach the core.
    from ingresslib.proxy import TimerKind

    dates: list[float] = []

    def formatdate(t: float, usegmt: bool) -> str:
        dates.append(t)
        return "Thu, 01 Jan 1970 00:00:00 GMT"

    monkeypatch.setattr(_connection, "_DISCARD_TIMEOUT", 0.25)
    monkeypatch.setattr(_connection, "formatdate", formatdate)
    p = ProxyPair([], clock=lambda: 0.0)  # no route: a local 404, the body discarded
    out = p.send(b"POST /nowhere HTTP/1.1\r\nHost: unknown.test\r\nContent-Length: 10\r\n\r\n")
    assert status_of(out) == 404 and dates == [0]
    assert p.timer == (TimerKind.BODY, 0.25)


# --- 3. names the docs and the package tables point at ---------------------------------------

DOCS = [ROOT / "README.md", ROOT / "ingresslib/proxy/API.md", *sorted((ROOT / "docs").glob("*.md"))]


def _doc_imports() -> list[tuple[str, str, str]]:
    """(file, module, name) of every ``from ingresslib... import ...`` line in the docs
    (a parenthesised list over several lines too)."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in re.finditer(r"^[ \t]*(?:>>> )?from (ingresslib[\w.]*) import "
                             r"(\([^)]*\)|[^\n]*)", text, re.M):
            for item in m.group(2).strip("()").replace("\n", " ").split(","):
                words = item.split("#")[0].split()
                if words:
                    out.append((path.name, m.group(1), words[0]))
    return out


def test_guard_every_name_the_docs_import_resolves() -> None:
    found = _doc_imports()
    assert len(found) >= 10
    missing = [(f, mod, name) for f, mod, name in found
               if not hasattr(importlib.import_module(mod), name)]
    assert not missing, missing


def test_guard_module_attributes_the_docs_name_in_split_modules_exist() -> None:
    # ``_connection._HOLD_LIMIT`` (API.md) and the like: a doc naming a moved constant by its
    # old module must still find it there.
    missing = []
    named = 0
    for path in DOCS:
        for mod, name in re.findall(r"`(_connection|_asgi\w*|_chunked|_h11_reader|_request|"
                                    r"_response_head)\.(\w+)`", path.read_text()):
            if name == "py":
                continue  # a file name
            named += 1
            full = f"ingresslib.proxy.{mod}" if not mod.startswith("_asgi") \
                else f"ingresslib.{mod}"
            if not hasattr(importlib.import_module(full), name):
                missing.append((path.name, mod, name))
    assert named and not missing, missing


def test_guard_the_public_tables_resolve() -> None:
    # ``ingresslib/__init__.py``'s lazy table and ``ingresslib.proxy.__all__``: every public
    # name found where they say (BodyTooLarge now defined in _asgi_reply, re-exported).
    for name in ingresslib.__all__:
        assert getattr(ingresslib, name) is not None, name
    import ingresslib.proxy as proxy

    for name in proxy.__all__:
        assert getattr(proxy, name) is not None, name
    from ingresslib._asgi import BodyTooLarge

    assert ingresslib.BodyTooLarge is BodyTooLarge
    for module in SPLIT:
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            assert hasattr(mod, name), (module, name)


def test_guard_readme_module_names_exist() -> None:
    # The divergence table's last column names modules (``proxy `_chunked```): each exists.
    text = (ROOT / "README.md").read_text()
    named: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| ") and line.rstrip().endswith("|"):
            last = line.rstrip().rstrip("|").rsplit("|", 1)[-1]
            named.update(re.findall(r"`(_\w+)`", last))
    assert "_chunked" in named
    for name in named:
        assert (ROOT / "ingresslib" / f"{name}.py").exists() or \
            (ROOT / "ingresslib/proxy" / f"{name}.py").exists(), name


# --- 4. the sans-IO rule covers every core module --------------------------------------------


def test_guard_the_io_check_lists_every_module_the_core_imports() -> None:
    # tests/test_proxy_connection.py::test_the_core_imports_no_io_module reads a fixed list;
    # every module of proxy/ that ``ingresslib.proxy`` imports at run time (the core) must be
    # on it, or a new one could import asyncio unseen.
    source = (ROOT / "tests/test_proxy_connection.py").read_text()
    listed = re.search(r"core = \[(.*?)\]", source, re.S)
    assert listed is not None
    core = set(re.findall(r'"(\w+)"', listed.group(1)))
    pending = ["__init__"]
    reached: set[str] = set()
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        tree = ast.parse((ROOT / "ingresslib/proxy" / f"{name}.py").read_text())
        for node in tree.body:  # module level: run at import (not TYPE_CHECKING, not lazy)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                pending.append(node.module)
    assert reached <= core, reached - core
    assert {"_chunked", "_h11_reader", "_request", "_response_head"} <= reached
