"""The compiled per-route counters (``_pick.pyx``); behaviour documented in ``_pick_py``.

Same constructors, sequences and exceptions as ``ingresslib._pick_py``.
"""

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from typing_extensions import disjoint_base

__all__ = ["Interleave", "ROTATION_TYPE", "Rotation", "first_header"]

_T = TypeVar("_T")

@disjoint_base
class Rotation(Generic[_T]):
    """A strict round-robin over ``items``, starting at ``items[start % len(items)]``."""

    def __init__(self, items: tuple[_T, ...], start: int = 0) -> None: ...
    def __iter__(self) -> Iterator[_T]: ...
    def __next__(self) -> _T: ...

ROTATION_TYPE: type

@disjoint_base
class Interleave:
    """``next()`` is True for exactly ``weight`` of every ``total`` consecutive calls."""

    def __init__(self, weight: int, total: int) -> None: ...
    def __iter__(self) -> Iterator[bool]: ...
    def __next__(self) -> bool: ...
    @property
    def weight(self) -> int: ...
    @property
    def total(self) -> int: ...

def first_header(items: list[Any], name: bytes) -> bytes | None:
    """The value of the first ``(raw_name, name, value)`` triple whose name equals ``name``."""
