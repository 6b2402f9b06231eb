"""Review of c9e4d59 (R20d): what the landed change got wrong.

1. ``add_objects`` guards only ``iter()`` now, so a TypeError while an object is added leaves
   ``from_dicts``: an object of a kind kept aside (``Resources.ignored``, deep-copied) holding
   a value ``copy.deepcopy`` refuses (a memoryview, a lock, a generator: "cannot pickle")
   escaped as a bare TypeError (before c9e4d59: "expected a list of objects, got list", a
   wrong error for the whole input). Such a value is kept as it is, shared.
2. ``_go_surrogates`` made a Python call for every escape of a text holding one surrogate
   escape: a JSON export whose kubectl last-applied-configuration annotations hold ``\\"``
   everywhere, with one emoji written as a pair (Python's json.dumps), spent ~150 ms in it
   (1.4 MB); only the surrogate escapes are visited now.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from ingresslib import Resources
from ingresslib._json_manifests import _go_surrogates


def _config_map(data: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
            "data": data}


def _gen() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize("make", [lambda: (memoryview(b"ab"), threading.Lock()), threading.Lock,
                                  _gen], ids=["memoryview", "lock", "generator"])
def test_an_ignored_object_holding_an_uncopyable_value_is_kept(make: Any) -> None:
    # (A memoryview next to a value marshal refuses: alone, marshal copies it as bytes.)
    value = make()
    obj = _config_map({"a": "1", "odd": value, "nested": {"k": ["v"]}})
    res = Resources.from_dicts([obj])  # was: TypeError: cannot pickle '_thread.lock' object
    (kept,) = res.ignored
    assert kept == obj
    assert kept["data"]["odd"] is value  # cannot be copied: shared as it is
    assert kept["data"] is not obj["data"]  # the rest is a copy still
    assert kept["data"]["nested"]["k"] is not obj["data"]["nested"]["k"]


def test_a_list_a_failed_copy_had_begun_is_copied_whole_where_it_recurs() -> None:
    # deepcopy enters `shared` in its memo before copying its items; when an item cannot be
    # copied, that half-made copy ([1]) must not stand for `shared` where it occurs again.
    lock = threading.Lock()
    shared: list[Any] = [1, lock, "z"]
    obj = _config_map({"a": (shared,), "b": shared})
    (kept,) = Resources.from_dicts([obj]).ignored
    assert kept["data"]["b"] == [1, lock, "z"]
    assert kept["data"]["a"] == (shared,)


def test_the_other_objects_of_the_input_still_decode() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"},
               "spec": {"ports": [{"port": 80}]}}
    res = Resources.from_dicts([_config_map({"odd": threading.Lock()}), service])
    assert [s.metadata.name for s in res.services] == ["s"] and len(res.ignored) == 1


# --- 2. _go_surrogates visits the surrogate escapes only ------------------------------------


def _calls(text: str) -> tuple[int, str]:
    """How many function calls (Python and C) ``_go_surrogates(text)`` makes, and its result."""
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        out = _go_surrogates(text)
    finally:
        sys.setprofile(None)
    return count, out


def _export(escapes: int) -> str:
    # An annotation as kubectl writes last-applied-configuration: a JSON text inside a string
    # (every quote escaped), and one emoji written as a surrogate pair.
    inner = json.dumps({"k": "v"} | {f"k{i}": "v" for i in range(escapes)})
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "c", "annotations": {"note": "\U0001f600",
                                                                  "last": inner}}})


def test_the_work_does_not_grow_with_the_other_escapes() -> None:
    small, big = _export(10), _export(2_000)
    assert big.count("\\") > 8_000
    calls_small, out_small = _calls(small)
    calls_big, out_big = _calls(big)
    # Was one Python call per escape (re.sub's callback): 8,000 more for the big text.
    assert calls_big == calls_small
    assert out_small == small and out_big == big  # a pair is kept
    assert json.loads(out_big)["metadata"]["annotations"]["note"] == "\U0001f600"


def test_the_work_grows_with_the_surrogate_escapes_only() -> None:
    one = '{"a": "' + "\\\\\\\\" * 5_000 + '\\udce9"}'
    calls, out = _calls(one)
    assert out == one.replace("\\udce9", "\\ufffd") and calls < 20
    many = '{"a": "' + "\\udce9\\\\" * 50 + '"}'
    assert json.loads(_go_surrogates(many))["a"] == "\ufffd\\" * 50


@pytest.mark.parametrize("escaped, expected", [
    ("\\\\\\udce9", "\\\ufffd"),  # an escaped backslash, then an escape
    ("\\\\\\\\udce9", "\\\\udce9"),  # two escaped backslashes, then text
    ("\\ud800\\ud800", "\ufffd\ufffd"),  # a high at the end of the string, twice
    ("\\ud83d\\ude00\\ude00", "\U0001f600\ufffd"),  # a pair, then a lone low
    ("\\uD83D\\uDE00", "\U0001f600"),  # upper case, a pair
    ("\\\\ud83d\\ude00", "\\ud83d\ufffd"),  # the high is text: the low is lone
])
def test_escapes_after_backslash_runs(escaped: str, expected: str) -> None:
    text = '{"' + escaped + '": "' + escaped + '"}'  # a key and a value alike
    assert json.loads(_go_surrogates(text)) == {expected: expected}
