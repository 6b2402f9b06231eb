"""docs/recipes.md is executable: every recipe's manifests load, its Python runs and asserts
what the text claims, its ``ingresslib explain`` lines print what the page shows.

Convention of the page: ``<!-- recipe: NAME -->`` on the line just above a recipe's ```yaml
block (``helpers`` marks the one ```python block that defines the helpers). A recipe runs in
its own folder holding that YAML as ``recipe.yaml``, in a fresh namespace seeded with the
helpers, through every ```python and ```console block up to the next marker. A ```console
block is a command line (``ingresslib ...``) then lines its output (stdout, then stderr) must
contain, in order.

tests/test_docs.py and tests/test_docs_review.py check a fixed list of pages, which does not
hold this one: their checks on command lines, flags, annotations and loggers are applied here
with their own helpers.
"""

from __future__ import annotations

import io
import re
import shlex
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib._cli import build_parser, main as cli_main

from test_docs import Block, blocks, cli_lines, run_block, variants
from test_docs_review import _cli_flags, _code_loggers, _program_flags, _unknown_flags

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "recipes.md"

_RECIPE = re.compile(r"^\s*<!--\s*recipe:\s*([\w-]+)\s*-->\s*$")


def recipes(path: Path = PAGE) -> dict[str, list[Block]]:
    """Each marker's name -> the fenced blocks from the one after it to the next marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [(i + 1, m.group(1)) for i, ln in enumerate(lines) if (m := _RECIPE.match(ln))]
    every = blocks(path)
    out: dict[str, list[Block]] = {}
    for k, (line, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines) + 1
        assert name not in out, f"recipe {name!r} twice"
        mine = [b for b in every if line < b.line < end]
        # The marker sits on the line just above its first block.
        assert mine and mine[0].line == line + 1, f"{name}: marker not above a block"
        out[name] = mine
    return out


RECIPES = recipes()
NAMES = [n for n in RECIPES if n != "helpers"]


def helpers() -> dict[str, Any]:
    (b,) = RECIPES["helpers"]
    assert b.lang == "python"
    ns: dict[str, Any] = {"__name__": "recipes_helpers"}
    run_block(b, ns, PAGE.name)
    return ns


def check_console(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    command, *expected = block.code.splitlines()
    argv = shlex.split(command)
    assert argv[0] == "ingresslib", command
    capsys.readouterr()
    assert cli_main(argv[1:]) == 0, command
    captured = capsys.readouterr()  # what the command prints, then its warnings (stderr)
    got = captured.out.splitlines() + captured.err.splitlines()
    pos = 0
    for want in expected:  # in order, each one a whole output line
        found = next((i for i in range(pos, len(got)) if got[i] == want), None)
        assert found is not None, f"{command}: {want!r} not in {got[pos:]}"
        pos = found + 1


def run_recipe(name: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """Run recipe ``name`` in ``workdir``; return how many Python/console blocks ran."""
    manifests, *rest = RECIPES[name]
    assert manifests.lang == "yaml", f"{name}: the first block is the manifests"
    (workdir / "recipe.yaml").write_text(manifests.code, encoding="utf-8")
    ingresslib.load_manifests(str(workdir / "recipe.yaml"))  # valid as written
    ns = helpers()
    ran = 0
    for b in rest:
        if b.lang == "python":
            with redirect_stdout(io.StringIO()):
                run_block(b, ns, f"{PAGE.name}[{name}]")
        elif b.lang == "console":
            check_console(b, capsys)
        else:
            pytest.fail(f"{name}: a {b.lang!r} block at line {b.line} (yaml comes first, once)")
        ran += 1
    return ran


@pytest.mark.parametrize("name", NAMES)
def test_recipe_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_recipe(name, tmp_path, capsys) >= 1


def test_page_covers_the_recipes_asked_for() -> None:
    assert set(NAMES) >= {"canary-header", "canary-cookie", "canary-weight", "sticky", "hash",
                          "ewma", "https", "app-root", "rewrite", "redirect", "www",
                          "backend-protocol", "limits", "warnings"}
    # Every YAML and Python block of the page belongs to a recipe (nothing unchecked).
    text = PAGE.read_text(encoding="utf-8")
    first = text.index("<!-- recipe:")
    assert not [b for b in blocks(PAGE) if b.line < text[:first].count("\n") + 1]
    for name in NAMES:
        assert "assert " in "".join(b.code for b in RECIPES[name] if b.lang == "python"), name


def test_a_wrong_claim_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """The recipes' asserts are live: one expected value changed makes its recipe fail."""
    page = PAGE.read_text(encoding="utf-8")
    wrong = page.replace('assert status == 307 and headers["location"]',
                         'assert status == 302 and headers["location"]', 1)
    assert wrong != page
    copy = tmp_path / "recipes.md"
    copy.write_text(wrong, encoding="utf-8")
    monkeypatch.setitem(RECIPES, "redirect", recipes(copy)["redirect"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError):
        run_recipe("redirect", tmp_path, capsys)
    # And a console line the command does not print.
    wrong = page.replace("endpoint 10.0.0.3:8080", "endpoint 10.0.0.4:8080", 1)
    copy.write_text(wrong, encoding="utf-8")
    monkeypatch.setitem(RECIPES, "canary-header", recipes(copy)["canary-header"])
    with pytest.raises(AssertionError, match="not in"):
        run_recipe("canary-header", tmp_path, capsys)


# --- what tests/test_docs.py and tests/test_docs_review.py check on the other pages ------------


def test_command_lines_parse() -> None:
    lines = cli_lines(PAGE)
    assert len(lines) >= 3
    parser = build_parser()
    for lineno, line in lines:
        for argv in variants(line):
            try:
                parser.parse_args(argv)
            except SystemExit as e:
                pytest.fail(f"recipes.md:{lineno}: {argv} refused ({e.code})")


def test_flags_exist() -> None:
    unknown = _unknown_flags(PAGE.read_text(encoding="utf-8"), _cli_flags() | _program_flags())
    assert not unknown, sorted(unknown)


def test_annotations_named_exist() -> None:
    """Every annotation the page writes is one the library reads (as a string somewhere)."""
    import ast

    strings: set[str] = set()
    for f in (ROOT / "ingresslib").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value.removeprefix("nginx.ingress.kubernetes.io/"))
    text = PAGE.read_text(encoding="utf-8")
    named = set(re.findall(r"nginx\.ingress\.kubernetes\.io/([a-z][a-z0-9-]*)", text))
    named |= set(re.findall(r"`((?:canary|session-cookie|affinity|upstream-hash-by|proxy|"
                            r"permanent|temporal|from-to|backend|rewrite|app|ssl|force|"
                            r"preserve|use|x-forwarded)-[a-z-]*)`", text))
    assert len(named) >= 20
    assert named - strings == set()


def test_loggers_named_exist() -> None:
    s = re.sub(r"\s+", " ", PAGE.read_text(encoding="utf-8"))
    named = set(re.findall(r"(?:logger|logs? on|logged on) `(ingresslib(?:\.\w+)*)`", s))
    named |= set(re.findall(r"\bon `(ingresslib\.\w+)`", s))
    assert named <= _code_loggers(), named - _code_loggers()


def test_links_point_at_headings() -> None:
    """The page's links (to its own sections and to other pages') name files and headings
    that exist (GitHub's heading anchors: lower case, punctuation dropped, spaces to '-')."""
    text = PAGE.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", text)
    assert len([t for t, _ in links if not t]) >= 10  # the table of contents
    for target, anchor in links:
        path = (PAGE.parent / target).resolve() if target else PAGE
        assert path.is_file(), target
        if not anchor:
            continue
        slugs = set()
        for ln in path.read_text(encoding="utf-8").splitlines():
            if ln.startswith("#"):
                title = ln.lstrip("#").strip().lower()
                slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
                slugs.add(slug)
        assert anchor in slugs, (target, anchor)
