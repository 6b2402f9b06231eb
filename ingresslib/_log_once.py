"""A failure logged in full once per kind: a retried operation that keeps failing the same way
(serve's reloads and cluster swaps, tried again 1 s doubling to 60 s; ``ClusterWatcher``
delivering a snapshot again) logs its traceback the first time, one line after that. A
success, or a failure of another kind, starts again.

Apart from ``_serve_reload`` (which uses it) so that ``_kube`` shares it without importing
serve's reload machinery, nor that ``_kube``.
"""

from __future__ import annotations

__all__ = ["OncePerKind"]


class OncePerKind:
    """The kind of the last failure: ``repr`` of an exception (its type and message), or a
    message as given."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: str | None = None

    def first(self, failure: BaseException | str) -> bool:
        """Whether ``failure`` is logged in full: not when the last one was of its kind."""
        kind = failure if isinstance(failure, str) else repr(failure)
        new = kind != self._last
        self._last = kind
        return new

    def reset(self) -> None:
        """A success (or a new first try): the next failure is logged in full."""
        self._last = None
