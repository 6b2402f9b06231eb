"""'did you mean ...?': the known name an unknown one is likely a misspelling of (annotations,
ConfigMap keys)."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence

__all__ = ["close_name"]

#: Words of opposite meaning: a guess that swaps one for the other is never offered
#: (``blacklist-source-range`` is closest to ``allowlist-source-range`` by spelling; taking
#: that advice would turn a list of refused clients into the only ones let in).
_OPPOSITES = (("allow", "white"), ("deny", "black", "block"))


def _sides(text: str) -> tuple[bool, bool]:
    return (any(w in text for w in _OPPOSITES[0]), any(w in text for w in _OPPOSITES[1]))


def _opposed(name: str, guess: str) -> bool:
    (name_allow, name_deny), (guess_allow, guess_deny) = _sides(name), _sides(guess)
    return (name_allow and guess_deny and not guess_allow) or (
        name_deny and guess_allow and not guess_deny)


def close_name(name: str, known: Collection[str], ordered: Sequence[str]) -> str | None:
    """The name of ``known`` (``ordered``: the same, sorted) that ``name`` is likely a
    misspelling of, else None. Keys are case-sensitive (a Go map lookup): ``Rewrite-Target``
    or ``REWRITE-TARGET`` is not read, and is offered the lower-case key whatever its case (by
    spelling alone, difflib rates an all-capitals name as unlike its key)."""
    lowered = name.lower()
    if lowered in known:
        return lowered
    for guess in difflib.get_close_matches(lowered, ordered, n=3, cutoff=0.8):
        if not _opposed(lowered, guess):
            return guess
    return None
