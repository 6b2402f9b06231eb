"""The two matcher implementations every matcher test runs against: the compiled
``ingresslib._match`` and the pure ``ingresslib._match_py`` (the oracle twin).

``MATCHER_PARAMS`` parametrizes a test or fixture; the compiled one is skipped when it is not
built, unless INGRESSLIB_REQUIRE_EXTENSIONS is set, in which case ``required`` fails the test
(an extension expected but not loaded must never pass silently)."""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

from ingresslib import _match_py

try:
    MATCH_C: Any = importlib.import_module("ingresslib._match")
except ImportError:
    MATCH_C = None

REQUIRE = os.environ.get("INGRESSLIB_REQUIRE_EXTENSIONS", "") not in ("", "0")

MATCHER_PARAMS = [
    pytest.param(_match_py.Matcher, id="python"),
    pytest.param(
        None if MATCH_C is None else MATCH_C.Matcher,
        id="cython",
        marks=pytest.mark.skipif(MATCH_C is None and not REQUIRE,
                                 reason="ingresslib._match is not built"),
    ),
]


def required(cls: Any) -> Any:
    """``cls``, or a test failure when the compiled matcher was required and is missing."""
    if cls is None:
        pytest.fail("INGRESSLIB_REQUIRE_EXTENSIONS is set but ingresslib._match is not built")
    return cls


def built_classes() -> list[Any]:
    """Every matcher class that loaded (for tests comparing them side by side)."""
    return [p.values[0] for p in MATCHER_PARAMS if p.values[0] is not None]
