"""The compiled per-route counters (``_pick.pyx``); behaviour documented in ``_pick_py``.

Same constructors, sequences and exceptions as ``ingresslib._pick_py``.
"""

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from typing_extensions import disjoint_base

__all__ = ["CanaryPick", "FastRoute", "HashPick", "native_crc32", "Interleave", "ROTATION_TYPE", "Rotation",
           "http_header"]

_T = TypeVar("_T")

@disjoint_base
class Rotation(Generic[_T]):
    """A strict round-robin over ``items``, starting at ``items[start % len(items)]``."""

    def __init__(self, items: tuple[_T, ...], start: int = 0) -> None: ...
    def __iter__(self) -> Iterator[_T]: ...
    def __next__(self) -> _T: ...
    def give_back(self, item: _T) -> bool:
        """The turn ``item`` took is served by the next ``next()``; False: not an item."""

ROTATION_TYPE: type

@disjoint_base
class Interleave:
    """``next()`` is True for exactly ``weight`` of every ``total`` consecutive calls."""

    def __init__(self, weight: int, total: int) -> None: ...
    def __iter__(self) -> Iterator[bool]: ...
    def __next__(self) -> bool: ...
    def give_back(self, choice: bool) -> None:
        """The choice a request took and never used is served by the next ``next()``."""
    @property
    def weight(self) -> int: ...
    @property
    def total(self) -> int: ...

def http_header(items: list[Any], name: bytes) -> bytes | None:
    """The header as nginx's ``$http_NAME``: one line as is, repeats joined by ``b", "``."""

@disjoint_base
class FastRoute:
    """``Router.route`` of one published state: match, per-route entries, the Python path."""

    def __init__(self, match: Callable[[str, str], Any], fast: dict[Any, Any],
                 slow: Callable[..., Any]) -> None: ...
    def route(self, method: str, host: str, path: str, headers: Any = (),
              client_ip: str | None = None, *, query: str | None = None) -> Any: ...

@disjoint_base
class CanaryPick:
    """A canary route decided by the inline header rule and the smooth split."""

    @property
    def route(self) -> Any: ...
    def __init__(self, route: Any, hname: bytes | None, hyes: bytes | None, hno: bytes | None,
                 h11_headers: Any, steps: Interleave, yes: Rotation[Any],
                 no: Rotation[Any]) -> None: ...
    def pick(self, headers: Any) -> Any: ...

@disjoint_base
class HashPick:
    """A consistent-hash backend with its bucket table: key, CRC-32, one byte, the Decision."""

    @property
    def backend(self) -> Any: ...
    def __init__(self, backend: Any, kind: int, hname: bytes | None, table: bytes, shift: int,
                 decisions: tuple[Any, ...], h11_headers: Any, points: bytes,
                 owners: bytes) -> None: ...
    def pick(self, path: Any, headers: Any, client_ip: Any) -> Any: ...

def native_crc32() -> bool:
    """True when HashPick calls zlib's crc32 directly (else through zlib.crc32)."""

def _use_native_crc32(on: bool) -> bool:
    """Tests only: switch HashPick between zlib's crc32 from C and zlib.crc32 from Python."""
