"""Session 36, lead: small twin and watcher items the session's helpers noticed.

- ``HashPick`` with a ``shift`` that is not an int (x32, session 35): the compiled twin took
  ``24.0`` and ``24.5`` through the C int parameter's ``__int__`` and hashed as with 24; the
  pure twin failed at its first pick with "unsupported operand type(s) for >>". Both refuse it
  now, at construction (the Router always passes ints).
"""

from __future__ import annotations

from array import array

import pytest

# Every test below runs once per implementation (the autouse fixture in _counters).
from _counters import counters  # noqa: F401


@pytest.mark.parametrize("shift", [24.0, 24.5, "24", None])
def test_hash_pick_refuses_a_shift_that_is_not_an_int(counters: object, shift: object) -> None:
    from ingresslib._pick_py import U32

    points = array(U32, [5]).tobytes()
    with pytest.raises(TypeError, match="shift must be an int"):
        counters.HashPick(object(), 1, None, bytes(256), shift, ("d",), None,  # type: ignore[attr-defined]
                          points, bytes([0]))


@pytest.mark.parametrize(("shift", "want"), [(24, "d"), (32, "d"), (0, None), (True, None)])
def test_hash_pick_takes_an_int_shift(counters: object, shift: int, want: str | None) -> None:
    # A 256-entry table: CRC-32 >> 24 (or >> 32: 0) indexes it; >> 0 or >> 1 (True) falls
    # past its end, where the caller must decide (None).
    from ingresslib._pick_py import U32

    points = array(U32, [5]).tobytes()
    pick = counters.HashPick(object(), 1, None, bytes(256), shift, ("d",), None,  # type: ignore[attr-defined]
                             points, bytes([0]))
    assert pick.pick("/x", None, "1.2.3.4") == want
