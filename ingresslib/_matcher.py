"""Picks the route matcher implementation, the aio-libs way.

The compiled ``_match`` is used when it was built and ``INGRESSLIB_NO_EXTENSIONS`` is unset (or
``"0"``); otherwise the pure twin ``_match_py``. ``MATCHER`` names the one in use, so a test (and
a user) can tell when an optional build silently fell back. Type checkers always see the pure
twin, which is the documented source of truth.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__all__ = ["MATCHER", "Matcher"]

NO_EXTENSIONS = os.environ.get("INGRESSLIB_NO_EXTENSIONS", "") not in ("", "0")

MATCHER: str
if TYPE_CHECKING:
    from ._match_py import Matcher

    MATCHER = "python"
elif NO_EXTENSIONS:
    from ._match_py import Matcher

    MATCHER = "python"
else:
    try:
        from ._match import Matcher

        MATCHER = "cython"
    except ImportError:  # not built (no compiler, or a pure wheel)
        from ._match_py import Matcher

        MATCHER = "python"
