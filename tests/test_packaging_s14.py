"""The sdist against the documents it ships and the tool that checks it (tests/package_check.sh),
checked without building: the sdist's file list is MANIFEST.in applied to the project's files
(tests/test_packaging.py's ``_sdist_template``), as setuptools applies it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import PurePosixPath

from test_packaging import ROOT, _project_files, _sdist_template

#: The benchmark documents and the kinds of file they name as tools or results of the folder.
_BENCH_DOCS = ("benchmarks/README.md", "benchmarks/load/README.md",
               "benchmarks/experiments/README.md")
_NAMED = re.compile(r"`([\w./-]+\.(?:py|c|md|json|patch|sh))`|\]\(([^)#\s]+)\)")


def _sdist_files() -> list[str]:
    return _sdist_template([], _project_files())


def test_sdist_carries_every_benchmark_file_its_docs_name() -> None:
    """benchmarks/README.md lists `mem_latency.c` among the folder's tools (the VM's memory
    levels it quotes come from it), beside the .py tools and the .patch experiments the sdist
    carries: a packager who runs the benchmarks from the sdist finds every file named."""
    allfiles = {f.replace("\\", "/") for f in _project_files()}
    shipped = set(_sdist_files())
    named: dict[str, str] = {}
    for doc in _BENCH_DOCS:
        if not (ROOT / doc).is_file():
            continue
        folder = PurePosixPath(doc).parent
        for tok in (a or b for a, b in _NAMED.findall((ROOT / doc).read_text("utf-8"))):
            for cand in (PurePosixPath(tok), folder / tok):
                rel = str(cand)
                if rel.startswith("benchmarks/") and rel in allfiles:
                    named.setdefault(rel, doc)
    assert "benchmarks/mem_latency.c" in named  # the check reads the docs it means to
    assert {f: d for f, d in named.items() if f not in shipped} == {}


def _package_check_bad_filter() -> tuple[str, str]:
    """package_check.sh's "sdist has no generated/local files" step: its `grep -E` pattern and
    the `grep -v` exception that follows it."""
    text = (ROOT / "tests" / "package_check.sh").read_text("utf-8")
    m = re.search(r"bad=\$\(grep -E '([^']+)' \\?\s*\"\$P/sdist\.txt\" \| grep -v '([^']+)'\)",
                  text)
    assert m is not None, "package_check.sh's sdist filter not found"
    return m.group(1), m.group(2)


def _flagged(files: list[str]) -> list[str]:
    pattern, exception = _package_check_bad_filter()
    bad = subprocess.run(["grep", "-E", pattern], input="\n".join(files) + "\n",
                         capture_output=True, text=True, check=False).stdout
    kept = subprocess.run(["grep", "-v", exception], input=bad, capture_output=True, text=True,
                          check=False).stdout
    return kept.split()


def test_package_check_does_not_fail_on_what_manifest_in_ships_on_purpose() -> None:
    """MANIFEST.in ships the benchmark results the docs cite (benchmarks/results.json,
    benchmarks/load/results.json...); package_check.sh flagged every `results*.json` as a
    generated file, so its sdist step failed on every run."""
    shipped = _sdist_files()
    assert "benchmarks/results.json" in shipped and "benchmarks/load/results.json" in shipped
    assert _flagged(shipped) == []


def test_package_check_still_flags_generated_and_local_files() -> None:
    """The other side: build output and local stores are still caught."""
    generated = ["ingresslib/_match.c", "ingresslib/_pick.c", "ingresslib/_match.html",
                 "ingresslib/_match.cpython-311-x86_64-linux-gnu.so",
                 "ingresslib/__pycache__/_load.cpython-311.pyc", "benchmarks/mem_latency.o",
                 ".benchmarks/Linux-CPython-3.11-64bit/0001_run.json", ".venv/bin/python",
                 "build/lib/ingresslib/_table.py", "dist/ingresslib-0.1.0.tar.gz"]
    assert _flagged(generated) == generated
