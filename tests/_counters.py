"""Runs a test module once per implementation of the per-route counters (compiled ``_pick``
and the pure ``_pick_py``), by swapping the names the Router and WeightSplit use.

Module-scoped (not monkeypatch), so hypothesis tests in the module can use it."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from ingresslib import _canary, _pick_py, _router

try:
    _pick_c: Any = importlib.import_module("ingresslib._pick")
except ImportError:
    _pick_c = None

REQUIRE = os.environ.get("INGRESSLIB_REQUIRE_EXTENSIONS", "") not in ("", "0")

COUNTER_MODULES = [
    pytest.param(_pick_py, id="counters-python"),
    pytest.param(
        _pick_c,
        id="counters-cython",
        marks=pytest.mark.skipif(_pick_c is None and not REQUIRE,
                                 reason="ingresslib._pick is not built"),
    ),
]


@pytest.fixture(scope="module", params=COUNTER_MODULES, autouse=True)
def counters(request: pytest.FixtureRequest) -> Iterator[Any]:
    module = request.param
    if module is None:
        pytest.fail("INGRESSLIB_REQUIRE_EXTENSIONS is set but ingresslib._pick is not built")
    names = ("Rotation", "ROTATION_TYPE", "FastRoute", "CanaryPick", "HashPick", "http_header")
    saved = [getattr(_router, n) for n in names], _canary.Interleave, _canary.http_header
    for n in names:
        setattr(_router, n, getattr(module, n))
    _canary.Interleave = module.Interleave
    _canary.http_header = module.http_header
    try:
        yield module
    finally:
        for n, v in zip(names, saved[0]):
            setattr(_router, n, v)
        _canary.Interleave, _canary.http_header = saved[1], saved[2]
