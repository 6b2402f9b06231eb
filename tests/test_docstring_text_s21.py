"""Python 3.13 compiles a docstring by encoding it (it strips its indentation at compile time):
a docstring holding a lone surrogate (``\\ud800`` written with one backslash) stops the whole
file from compiling there, so pytest cannot even collect it (``make test PY=python3.13`` failed
on tests/test_seams_s20.py while 3.11 and 3.12 ran it). Checked here on any Python."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
_FILES = sorted(p for d in ("ingresslib", "tests", "examples", "benchmarks")
                for p in (_ROOT / d).rglob("*.py"))

# A \u escape of a surrogate code point after an odd number of backslashes (or any escape
# spelling: \U0000d800 too).
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\(?:u[dD][89a-fA-F]|U0000[dD][89a-fA-F])")


def _docstrings(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                found.append((body[0].lineno, body[0].value.value))
    return found


def test_the_files_are_found() -> None:
    assert _ROOT / "tests" / "test_docstring_text_s21.py" in _FILES and len(_FILES) > 200


def test_no_docstring_holds_a_lone_surrogate() -> None:
    bad = []
    for path in _FILES:
        source = path.read_text("utf-8")
        if not _SURROGATE_ESCAPE.search(source):  # parsing only the files that could hold one
            continue
        for line, text in _docstrings(ast.parse(source)):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                bad.append(f"{path.relative_to(_ROOT)}:{line}")
    assert bad == []


@pytest.mark.parametrize("source, ok", [('"""a \\\\ud800 b"""', True), ('"""a \\ud800 b"""', False)])
def test_the_check_tells_the_two_spellings_apart(source: str, ok: bool) -> None:
    (line, text), = _docstrings(ast.parse(source))
    assert (text.isascii() and "\\ud800" in text) is ok
    assert bool(_SURROGATE_ESCAPE.search(source)) is not ok
