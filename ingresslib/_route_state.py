"""Picks the per-route counter implementation, as ``_matcher`` picks the matcher.

The compiled ``_pick`` is used when it was built and ``INGRESSLIB_NO_EXTENSIONS`` is unset (or
``"0"``); otherwise the pure twin ``_pick_py``. ``COUNTERS`` names the one in use;
``ROTATION_TYPE`` is the type a ``Rotation`` has (the router dispatches on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._matcher import NO_EXTENSIONS

__all__ = ["COUNTERS", "CanaryPick", "FastRoute", "HashPick", "Interleave", "ROTATION_TYPE", "Rotation",
           "http_header"]

COUNTERS: str
if TYPE_CHECKING:
    from ._pick_py import ROTATION_TYPE, CanaryPick, FastRoute, HashPick, Interleave, Rotation, http_header

    COUNTERS = "python"
elif NO_EXTENSIONS:
    from ._pick_py import ROTATION_TYPE, CanaryPick, FastRoute, HashPick, Interleave, Rotation, http_header

    COUNTERS = "python"
else:
    try:
        from ._pick import ROTATION_TYPE, CanaryPick, FastRoute, HashPick, Interleave, Rotation, http_header

        COUNTERS = "cython"
    except ImportError:  # not built (no compiler, or a pure wheel)
        from ._pick_py import ROTATION_TYPE, CanaryPick, FastRoute, HashPick, Interleave, Rotation, http_header

        COUNTERS = "python"
