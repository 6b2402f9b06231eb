"""How many hypothesis examples a test runs, as a multiple of the loaded profile's budget.

A test's own ``@settings(max_examples=3000)`` wins over every profile (tests/conftest.py): CI
ran it at ten times its 300, and ``thorough`` (2000) could not raise it. ``examples(factor)``
scales with the profile instead, so ``dev`` stays quick, CI pays its budget, and a long hunt by
hand (``HYPOTHESIS_PROFILE=thorough``) still runs thousands.
"""

from __future__ import annotations

from hypothesis import settings


def examples(factor: float = 1.0) -> int:
    """``factor`` times the loaded profile's ``max_examples`` (conftest.py loads the profile
    before any test module is imported), at least 10."""
    loaded = settings.default
    assert loaded is not None  # a profile is always loaded (hypothesis's own, or conftest's)
    return max(10, round(loaded.max_examples * factor))
