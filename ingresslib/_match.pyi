"""The compiled route matcher (``_match.pyx``); behaviour documented in ``_match_py``.

Same constructor, ``lookup`` results and exceptions as ``ingresslib._match_py.Matcher``.
"""

from collections.abc import Sequence

from typing_extensions import disjoint_base

from ._match_py import HostGroup

__all__ = ["Matcher"]

@disjoint_base
class Matcher:
    """Per host group a compressed radix tree over the canonical path's bytes."""

    #: The longest rule path (bytes) it takes; longer ones raise ValueError in ``__init__``.
    max_key_length: int

    def __init__(self, groups: Sequence[HostGroup], default: object | None = None) -> None: ...
    def lookup(self, host: str, path: str) -> object | None:
        """The payload for ``(host, path)``, the group's default, or the matcher's default.

        Raises ``BadRequestError`` for a Host the proxy refuses (``_normalize.check_host``),
        then for a path that has no canonical form.
        """
    def _check_invariants(self) -> None:
        """Raise AssertionError unless the flattened trees are well formed (tests only)."""
    def _host_probes(self) -> tuple[float, int]:
        """(mean, max) probes that finding each rule host takes in its table (tests only)."""
