"""Benchmark fixtures and the ns-per-lookup summary printed at the end of a run.

Files are named ``bench_*.py`` so that the normal test run does not collect them; run them by
naming them on the command line (see README.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

#: Filled by the benchmarks: (group, name, params, ns per lookup or ms, extra).
RESULTS: list[dict[str, Any]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    from report import render

    terminalreporter.write_sep("=", "ingresslib benchmark summary (medians)")
    terminalreporter.write_line(render(RESULTS))


@pytest.fixture
def record() -> Iterator[Any]:
    def add(**row: Any) -> None:
        RESULTS.append(row)

    yield add
