"""How ingresslib is packaged, checked without building or installing anything.

The slow checks (build the sdist and wheel, install them in fresh venvs on 3.11-3.13, no
compiler, the minimum dependency versions, mypy against the installed wheel) are in
``tests/package_check.sh``, a tool run by hand: it is not part of this suite.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ingresslib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PROJECT: dict[str, Any] = PYPROJECT["project"]

#: Folders that are never part of the project (local environments, caches, build output).
_LOCAL_DIRS = {".git", ".venv", "build", "dist", ".mypy_cache", ".pytest_cache", ".hypothesis",
               ".benchmarks", "__pycache__"}


def _project_files() -> list[str]:
    """Every file under ROOT, as sdist's FileList sees them (relative, os.sep), local folders
    left out: generated files (``_match.c``, ``*.so``, ``*.pyc``) of a working tree included."""
    out = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in _LOCAL_DIRS
                       and not d.startswith(".venv") and not d.endswith(".egg-info")]
        rel = os.path.relpath(dirpath, ROOT)
        out += [name if rel == "." else os.path.join(rel, name) for name in filenames]
    return sorted(out)


def _load_setup() -> ModuleType:
    """setup.py as a module: its ``setup()`` call only runs as ``__main__`` (as pip runs it)."""
    spec = importlib.util.spec_from_file_location("_ingresslib_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _build_ext_command(setup: ModuleType, tmp_path: Path, env: dict[str, str]) -> Any:
    from setuptools import Distribution  # type: ignore[import-untyped, unused-ignore]

    dist = Distribution({"name": "ingresslib", "ext_modules": setup.extensions(env),
                         "cmdclass": {"build_ext": setup.BuildExt}})
    cmd = setup.BuildExt(dist)
    cmd.build_lib = str(tmp_path / "lib")
    cmd.build_temp = str(tmp_path / "temp")
    cmd.ensure_finalized()
    return cmd


# --- the optional extensions ---------------------------------------------------------------------


def test_a_failed_compile_falls_back_to_the_twins_with_a_clear_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No C compiler (CC=/bin/false, no Python headers...): the build succeeds without the
    extensions, and the log says in words what that means and what to do about it."""
    from setuptools.errors import CompileError  # type: ignore[import-untyped, unused-ignore]

    setup = _load_setup()
    cmd = _build_ext_command(setup, tmp_path, {})
    assert [e.name for e in cmd.extensions] == ["ingresslib._match", "ingresslib._pick"]
    assert all(e.optional for e in cmd.extensions)

    def no_compiler(ext: object) -> None:
        raise CompileError("command '/bin/false' failed with exit code 1")

    warnings: list[str] = []
    monkeypatch.setattr(cmd, "build_extension", no_compiler)
    monkeypatch.setattr(cmd, "warn", warnings.append)
    cmd.run()  # no exception: the extensions are optional

    assert cmd.missing() == ["ingresslib._match", "ingresslib._pick"]
    (banner,) = [w for w in warnings if "pure-Python" in w]
    assert "ingresslib._match, ingresslib._pick could not be built" in banner
    assert "ingresslib.MATCHER" in banner and "INGRESSLIB_REQUIRE_EXTENSIONS=1" in banner
    assert "INGRESSLIB_NO_EXTENSIONS=1" in banner and "--no-cache-dir" in banner


def test_a_successful_build_says_nothing_more(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    setup = _load_setup()
    cmd = _build_ext_command(setup, tmp_path, {})

    def fake_build(ext: Any) -> None:  # what the compiler would leave behind
        path = Path(cmd.get_ext_fullpath(ext.name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")

    warnings: list[str] = []
    monkeypatch.setattr(cmd, "build_extension", fake_build)
    monkeypatch.setattr(cmd, "warn", warnings.append)
    cmd.run()
    assert cmd.missing() == [] and warnings == []


def test_require_extensions_makes_a_failed_compile_fatal(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from setuptools.errors import CompileError  # type: ignore[import-untyped, unused-ignore]

    setup = _load_setup()
    cmd = _build_ext_command(setup, tmp_path, {"INGRESSLIB_REQUIRE_EXTENSIONS": "1"})
    assert not any(e.optional for e in cmd.extensions)

    def no_compiler(ext: object) -> None:
        raise CompileError("no compiler")

    monkeypatch.setattr(cmd, "build_extension", no_compiler)
    with pytest.raises(CompileError):
        cmd.run()


def test_a_c_file_older_than_its_pyx_is_never_compiled_in_its_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Cython, setuptools compiles the ``.c`` beside a ``.pyx``: one left by an older
    build would ship old code without a word. setup.py stops with what to do instead."""
    setup = _load_setup()
    pyx, c = tmp_path / "_m.pyx", tmp_path / "_m.c"
    pyx.write_text("# new")
    c.write_text("/* old */")
    os.utime(c, (1_000_000, 1_000_000))
    assert setup.stale_c_sources([str(pyx)], False) == [(str(c), str(pyx))]
    assert setup.stale_c_sources([str(c)], False) == [(str(c), str(pyx))]  # older setuptools
    assert setup.stale_c_sources([str(pyx)], True) == []  # Cython compiles the .pyx
    os.utime(pyx, (500_000, 500_000))
    assert setup.stale_c_sources([str(pyx)], False) == []  # generated from this .pyx or later

    # The build command as pip runs it without Cython, in a tree holding an old .c.
    monkeypatch.setattr(setup, "cython_importable", lambda: False)
    _assert_stops_before_compiling(setup, tmp_path, monkeypatch)


def _assert_stops_before_compiling(setup: ModuleType, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """setup.py's build_ext, in a tree whose ``.c`` files are older than their ``.pyx``, stops
    before setuptools' build_extension compiles anything."""
    (tmp_path / "ingresslib").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for name in setup.NAMES:
        (tmp_path / "ingresslib" / f"{name}.c").write_text("/* old */")
        os.utime(tmp_path / "ingresslib" / f"{name}.c", (1_000_000, 1_000_000))
        (tmp_path / "ingresslib" / f"{name}.pyx").write_text("# new")
    cmd = _build_ext_command(setup, tmp_path, {})
    compiled: list[str] = []
    monkeypatch.setattr(setup.build_ext, "build_extension", lambda self, ext: compiled.append(ext))
    with pytest.raises(SystemExit, match="_match.c is older than ingresslib/_match.pyx"):
        cmd.run()
    assert compiled == []


def test_a_cython_setuptools_cannot_import_does_not_disarm_the_stale_c_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """setuptools swaps a ``.pyx`` for its ``.c`` unless ``Cython.Distutils.build_ext``
    imports (setuptools/extension.py ``_have_cython``: any exception means no Cython). A
    ``Cython`` that is found but does not import (an old one on a newer Python, a broken
    install, a stray ``Cython/`` folder) got past a check that only asked whether the name is
    found (``importlib.util.find_spec``): the old ``.c`` was compiled without a word."""
    from setuptools import Extension  # type: ignore[import-untyped, unused-ignore]

    broken = tmp_path / "site" / "Cython"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('built for another Python')\n")
    for name in [m for m in sys.modules if m == "Cython" or m.startswith("Cython.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert importlib.util.find_spec("Cython") is not None  # found...
    ext = Extension("ingresslib._match", ["ingresslib/_match.pyx"])
    ext._convert_pyx_sources_to_lang()
    assert ext.sources == ["ingresslib/_match.c"]  # ... yet setuptools compiles the .c
    setup = _load_setup()
    _assert_stops_before_compiling(setup, tmp_path / "tree", monkeypatch)
    assert setup.cython_importable() is False


def test_no_cython_and_no_c_file_says_so(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A build without pip's isolation, from a clean checkout or the sdist (no ``.c``: never
    committed, not shipped), without Cython: setuptools handed the compiler a ``.c`` that does
    not exist, and the log said "cc1: fatal error: ... No such file" under a banner blaming a
    missing C compiler. The extension falls back to the twins as before, for the reason said."""
    setup = _load_setup()
    monkeypatch.setattr(setup, "cython_importable", lambda: False)
    (tmp_path / "ingresslib").mkdir()
    monkeypatch.chdir(tmp_path)
    for name in setup.NAMES:
        (tmp_path / "ingresslib" / f"{name}.pyx").write_text("# the source")
    cmd = _build_ext_command(setup, tmp_path, {})
    compiled: list[str] = []
    monkeypatch.setattr(setup.build_ext, "build_extension", lambda self, ext: compiled.append(ext))
    warnings: list[str] = []
    monkeypatch.setattr(cmd, "warn", warnings.append)
    cmd.run()  # optional: no exception
    assert compiled == [] and cmd.missing() == ["ingresslib._match", "ingresslib._pick"]
    failed = [w for w in warnings if w.startswith('building extension "ingresslib._match"')]
    assert len(failed) == 1 and "Cython is not installed" in failed[0], warnings
    assert "ingresslib/_match.c" in failed[0] and "build isolation" in failed[0]
    (banner,) = [w for w in warnings if "pure-Python" in w]
    assert "no Cython" in banner
    # INGRESSLIB_REQUIRE_EXTENSIONS=1: the same reason fails the build.
    from setuptools.errors import CompileError  # type: ignore[import-untyped, unused-ignore]

    strict = _build_ext_command(setup, tmp_path, {"INGRESSLIB_REQUIRE_EXTENSIONS": "1"})
    with pytest.raises(CompileError, match="Cython is not installed"):
        strict.run()
    assert compiled == []


@pytest.mark.parametrize(("value", "built"), [(None, True), ("", True), ("0", True),
                                              ("1", False), ("yes", False)])
def test_no_extensions_reads_the_variable_as_the_runtime_does(value: str | None,
                                                              built: bool) -> None:
    setup = _load_setup()
    env = {} if value is None else {"INGRESSLIB_NO_EXTENSIONS": value}
    assert bool(setup.extensions(env)) is built
    # ingresslib/_matcher.py: NO_EXTENSIONS = os.environ.get(...) not in ("", "0")
    assert (env.get("INGRESSLIB_NO_EXTENSIONS", "") not in ("", "0")) is not built


def test_each_extension_has_source_stub_and_pure_twin() -> None:
    setup = _load_setup()
    for name in setup.NAMES:
        for suffix in (".pyx", ".pyi"):
            assert (ROOT / "ingresslib" / f"{name}{suffix}").is_file(), name + suffix
        assert (ROOT / "ingresslib" / f"{name}_py.py").is_file(), name


# --- what the wheel and the sdist carry ----------------------------------------------------------


def _package_data_matches(rel: str, table: dict[str, list[str]]) -> bool:
    """Whether ``rel`` (a path under ingresslib/) matches a [tool.setuptools.*package-data]
    pattern: patterns are globs relative to the folder of the package named by the key."""
    for pkg, patterns in table.items():
        prefix = pkg.replace(".", "/").removeprefix("ingresslib").strip("/")
        if prefix and not rel.startswith(prefix + "/"):
            continue
        sub = rel.removeprefix(prefix + "/") if prefix else rel
        # setuptools globs each pattern in the package folder: `*` stops at `/`.
        if any(fnmatch.fnmatch(sub, p) and sub.count("/") == p.count("/") for p in patterns):
            return True
    return False


def test_wheel_ships_every_data_file_of_the_package() -> None:
    """py.typed, the .pyi stubs, examples/demo.yaml (read by `ingresslib demo`) and
    proxy/API.md (named by ingresslib.proxy's docstring) are package data."""
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    pkg = ROOT / "ingresslib"
    generated = ("*.c", "*.so", "*.pyd", "*.html", "*.pyc")
    files = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyx")
             and not any(fnmatch.fnmatch(p.name, g) for g in generated)]
    assert {"py.typed", "_match.pyi", "_pick.pyi", "examples/demo.yaml",
            "proxy/API.md"} <= set(files)
    for rel in files:
        assert _package_data_matches(rel, data), f"ingresslib/{rel} is not package data"


def test_wheel_leaves_generated_files_out() -> None:
    excluded = PYPROJECT["tool"]["setuptools"]["exclude-package-data"]
    for rel in ("_match.c", "_pick.c", "_match.html"):
        assert _package_data_matches(rel, excluded), rel


def _sdist_template(files: list[str], allfiles: list[str]) -> list[str]:
    """The sdist's file list after MANIFEST.in, starting from ``files`` (what setuptools added
    by default), the way ``setuptools.command.sdist`` applies the template."""
    from setuptools._distutils.filelist import (  # type: ignore[import-untyped, unused-ignore]
        FileList,
    )

    fl = FileList()
    fl.allfiles = list(allfiles)
    fl.files = list(files)
    for line in (ROOT / "MANIFEST.in").read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            fl.process_template_line(line)
    return [f.replace(os.sep, "/") for f in fl.files]


def test_sdist_carries_what_the_test_suite_reads() -> None:
    """From the unpacked sdist, `pytest` needs conftest.py, the helpers, tests/manifests/, the
    docs and examples it checks, the Makefile and benchmarks/load/soak.py."""
    allfiles = _project_files()
    got = set(_sdist_template([], allfiles))
    wanted = [f.replace(os.sep, "/") for f in allfiles
              if f.split(os.sep)[0] in ("tests", "docs", "examples")
              and not f.endswith((".pyc", ".pyo"))]
    wanted += ["Makefile", "ingresslib/proxy/API.md", "benchmarks/load/soak.py",
               "tests/conftest.py"]
    assert sorted(set(wanted) - got) == []


def test_sdist_carries_the_benchmark_results_the_docs_cite() -> None:
    """README.md links benchmarks/results.json; benchmarks/README.md names the other runs."""
    allfiles = _project_files()
    got = set(_sdist_template([], allfiles))
    cited = {m for doc in ("README.md", "benchmarks/README.md", "benchmarks/load/README.md")
             for m in re.findall(r"benchmarks/[\w/.-]*\.json", (ROOT / doc).read_text("utf-8"))}
    cited = {c for c in cited if (ROOT / c).exists()}
    assert "benchmarks/results.json" in cited
    assert sorted(cited - got) == []


def test_sdist_leaves_generated_and_local_files_out() -> None:
    """Even from a working tree with build output lying around (as /work/main has)."""
    local = ["ingresslib/_match.c", "ingresslib/_pick.c", "ingresslib/_match.html",
             "ingresslib/_match.cpython-311-x86_64-linux-gnu.so",
             "ingresslib/__pycache__/_load.cpython-311.pyc",
             "tests/__pycache__/test_load.cpython-311-pytest-9.0.pyc",
             ".benchmarks/Linux-CPython-3.11-64bit/0001_run.json", "benchmarks/mem_latency.o"]
    allfiles = sorted({*_project_files(), *(f.replace("/", os.sep) for f in local)})
    # Worst case: setuptools' defaults had picked up every file before the template ran.
    kept = _sdist_template(allfiles, allfiles)
    assert [f for f in kept if f in local] == []
    assert not [f for f in kept if f.endswith((".so", ".pyc", ".o")) or f.startswith(".benchmarks")]
    assert not [f for f in kept if f.startswith("ingresslib/") and f.endswith((".c", ".html"))]


def test_generated_files_are_not_committed() -> None:
    """The issue: "generated .c/.so never committed"."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (e.g. an unpacked sdist)")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert "ingresslib/_match.pyx" in tracked and "setup.py" in tracked
    bad = [f for f in tracked if f.endswith((".so", ".pyd", ".o", ".pyc"))
           or "__pycache__" in f or (f.startswith("ingresslib/") and f.endswith((".c", ".html")))]
    assert bad == []
    for f in tracked:  # a hand-written .c (benchmarks/mem_latency.c) is fine, Cython's is not
        if f.endswith(".c"):
            assert "Generated by Cython" not in (ROOT / f).read_text("utf-8", "replace")[:200], f


# --- dependencies and metadata -------------------------------------------------------------------


def _requirement_groups() -> dict[str, list[str]]:
    groups = {"build-system": PYPROJECT["build-system"]["requires"],
              "dependencies": PROJECT["dependencies"]}
    for extra, reqs in PROJECT.get("optional-dependencies", {}).items():
        groups[f"extra {extra}"] = reqs
    for group, reqs in PYPROJECT.get("dependency-groups", {}).items():
        groups[f"group {group}"] = [r for r in reqs if isinstance(r, str)]
    return groups


def test_every_requirement_has_a_lower_bound() -> None:
    """The issue: "Pin lower bounds in pyproject.toml" (tests/package_check.sh installs
    exactly these minimums and runs a smoke)."""
    from packaging.requirements import Requirement

    for group, reqs in _requirement_groups().items():
        for text in reqs:
            req = Requirement(text)
            lower = [s for s in req.specifier if s.operator in (">=", "==", "~=")]
            assert len(lower) == 1, (group, text)
            # The lower bound itself is allowed (a cap must not exclude it).
            assert req.specifier.contains(lower[0].version, prereleases=True), (group, text)


def test_installed_runtime_dependencies_meet_the_bounds() -> None:
    from packaging.requirements import Requirement

    for text in PROJECT["dependencies"]:
        req = Requirement(text)
        version = importlib.metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), (text, version)


def test_installed_test_and_bench_dependencies_meet_the_bounds() -> None:
    from packaging.requirements import Requirement

    groups = _requirement_groups()
    checked = 0
    for group in ("group test", "group bench", "extra k8s"):
        for text in groups.get(group, []):
            req = Requirement(text)
            try:
                version = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                continue  # e.g. the bench group in a test-only environment
            assert req.specifier.contains(version, prereleases=True), (text, version)
            checked += 1
    assert checked >= 2  # at least pytest and hypothesis (tests/conftest.py) are installed


def test_k8s_extra_starts_at_a_working_lightkube() -> None:
    """lightkube 1.0.0's AsyncClient fails every request (it builds the httpx client from
    ``dataclasses.asdict``, turning the Timeout into a dict): tests/test_kube.py fails at that
    version and passes at 1.0.1 (tests/package_check.sh runs it at the extra's lower bound)."""
    from packaging.requirements import Requirement

    extra = Requirement(*PROJECT["optional-dependencies"]["k8s"])
    assert extra.name == "lightkube"
    assert not extra.specifier.contains("1.0.0") and extra.specifier.contains("1.0.1")
    # The test group installs the same range the users get.
    (group,) = [r for r in PYPROJECT["dependency-groups"]["test"] if r.startswith("lightkube")]
    assert Requirement(group).specifier == extra.specifier


def test_python_versions_agree() -> None:
    """requires-python, the classifiers and mypy's target name the same floor (3.11)."""
    floor = re.fullmatch(r">=3\.(\d+)", PROJECT["requires-python"])
    assert floor is not None and floor.group(1) == "11"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == "3.11"
    minors = {int(m) for m in re.findall(r"Python :: 3\.(\d+)$", "\n".join(PROJECT["classifiers"]),
                                        re.M)}
    assert min(minors) == 11 and minors == set(range(11, max(minors) + 1))
    assert sys.version_info >= (3, 11)


def test_version_is_the_same_everywhere() -> None:
    assert PROJECT["version"] == ingresslib.__version__


def test_license_and_readme_metadata() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert (ROOT / PROJECT["readme"]).is_file()


# --- entry points --------------------------------------------------------------------------------


def test_console_script_entry_point_resolves() -> None:
    """`ingresslib` on PATH runs ingresslib._cli:main (pyproject and installed metadata)."""
    from ingresslib._cli import main

    assert PROJECT["scripts"] == {"ingresslib": "ingresslib._cli:main"}
    (ep,) = importlib.metadata.entry_points(group="console_scripts", name="ingresslib")
    assert ep.value == "ingresslib._cli:main" and ep.load() is main


def test_python_dash_m_ingresslib(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "ingresslib", "--version"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ingresslib {ingresslib.__version__}"
