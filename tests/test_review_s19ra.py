"""Session 19 second-look review (R19a) of Q19v (manifest path) and Q19c (canary)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingresslib
from ingresslib import ValidationError
from ingresslib._canary import LinearRegex, RegexError

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"


def _fields(text: str | bytes) -> list[str]:
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests(text, source="deploy/web.yaml")
    return [e.field for e in info.value.errors]


# --- 1. a byte order mark opening a str is no column ------------------------------------------


@pytest.mark.parametrize("bad", ["\x1b", "\x00", "\udce9"])
def test_a_bad_character_after_an_opening_bom_is_placed_as_the_yaml_readers_place_it(
        bad: str) -> None:
    # Catches: the reader's offset counts a byte order mark opening the text (libyaml's in
    # UTF-8 bytes, PyYAML's in characters), while both readers skip it before they count
    # columns. A file read with encoding="utf-8" (Notepad's BOM kept) put an ESC one column
    # right of where any other syntax error on that line is placed, and of where the same
    # file given as bytes (utf-8-sig drops the BOM) places it: "line 1, column 8" for 7.
    text = "\ufeffkind: " + bad + "\n"
    assert _fields(text) == _fields("\ufeffkind: ]\n") == ["line 1, column 7"]
    if bad != "\udce9":  # (no bytes can hold a lone surrogate)
        assert _fields(text.encode("utf-8")) == ["line 1, column 7"]
    # Only the first line: the BOM holds no column of the next ones.
    assert _fields("\ufeffkind: x\ny: " + bad + "\n") == _fields("\ufeffkind: x\ny: ]\n") == [
        "line 2, column 4"]


# --- 2. without libyaml a control character was a ReaderError out of parse_manifests ------------

_PURE = r"""
import json, sys, yaml
yaml.__with_libyaml__ = False  # as on a PyYAML built without libyaml
import ingresslib
from ingresslib import _load
assert _load._BaseLoader is yaml.SafeLoader
out = []
for text in json.loads(sys.argv[1]):
    try:
        ingresslib.parse_manifests(text, source="deploy/web.yaml")
        out.append(None)
    except ingresslib.ValidationError as exc:
        out.append([[e.field, e.detail] for e in exc.errors])
    except Exception as exc:
        out.append(f"{type(exc).__name__}: {exc}")
print(json.dumps(out))
"""

_PURE_TEXTS = [
    SERVICE + "# café ééé\nstatus: \x1b[0m\n",
    "\ufeffkind: \x00\n",
    SERVICE + "---\r\nkind: \U0001f600 \x1b\r\n",
]


def test_a_control_character_is_a_validation_error_without_libyaml_too() -> None:
    # Catches: PyYAML's own reader checks a str's characters when the loader is made, and
    # the loader was made outside the `try` that turns YAML errors into ValidationError: with
    # no libyaml (_load falls back to yaml.SafeLoader) parse_manifests raised yaml's
    # ReaderError, two lines naming '"<unicode string>", position 37'. Now the same error as
    # with libyaml, at the same line and column.
    run = subprocess.run([sys.executable, "-c", _PURE, json.dumps(_PURE_TEXTS)],
                         capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    pure = json.loads(run.stdout)
    for text, got in zip(_PURE_TEXTS, pure):
        assert isinstance(got, list), got
        ((field, detail),) = got
        assert field == _fields(text)[0]  # libyaml's place, in this process
        char = "#x001b" if "\x1b" in text else "#x0000"
        assert detail.startswith(f"YAML syntax error: unacceptable character {char}: ")


# --- 3. LinearRegex: the DFA cache reset within a search keeps the answers ---------------------


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet="ab|()*+?^$.{}2,c", min_size=1, max_size=10),
       st.text(alphabet="abc", max_size=40), st.integers(0, 3), st.integers(0, 3))
def test_answers_are_re_search_s_with_the_cache_reset_at_every_step(
        pattern: str, text: str, cache: int, trans: int) -> None:
    # Guards Q19c's mid-search reset (`_reset` then `_intern` of the state in hand): with
    # limits of 0 to 3 the cache is reset at nearly every character, and the state set, its
    # `accept` flag and the transitions must carry over exactly.
    try:
        ref = re.compile(pattern, re.ASCII)
    except (re.error, RecursionError):
        return
    if "{," in pattern:
        return  # literal text in PCRE before 10.43 (docs/router.md), {0,n} in re
    try:
        rx = LinearRegex(pattern)
    except RegexError:
        return
    old = LinearRegex._CACHE_LIMIT, LinearRegex._TRANS_LIMIT
    LinearRegex._CACHE_LIMIT, LinearRegex._TRANS_LIMIT = cache, trans
    try:
        for _ in range(2):  # a cold cache, then one a search left behind
            assert rx.search(text) is (ref.search(text) is not None)
    finally:
        LinearRegex._CACHE_LIMIT, LinearRegex._TRANS_LIMIT = old


def test_threads_sharing_one_regex_with_constant_resets_agree_with_re(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LinearRegex, "_CACHE_LIMIT", 2)
    monkeypatch.setattr(LinearRegex, "_TRANS_LIMIT", 2)
    rx = LinearRegex("a.{5}c|^b+$")
    texts = ["ab" * 40 + "c", "b" * 50, "ab" * 40, "xa12345c", "bbbbba"]
    want = [re.search("a.{5}c|^b+$", t) is not None for t in texts]
    wrong: list[str] = []

    def work() -> None:
        for _ in range(200):
            for t, w in zip(texts, want):
                if rx.search(t) is not w:
                    wrong.append(t)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
