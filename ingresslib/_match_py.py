"""The pure-Python route matcher: the fallback for ``_match.pyx`` and the reference it is tested
against. Same constructor, same ``lookup``, same results, same exceptions.

The matcher knows nothing of manifests: the caller (``RouteTable``) already resolved precedence,
duplicates and default backends into host groups of prebuilt payloads. A lookup does only this
(SEMANTICS.md §4):

1. the host group: the exact host, else (a Host the proxy refuses raises ``BadRequestError``:
   ``_normalize.check_host``, nginx's ``ngx_http_validate_host``) the ``*.`` wildcard covering
   one first label, else the host-less group, else no group (the matcher's ``default``); "No
   fall-through to a less specific group once one is chosen";
2. the path: split off a query at the first ``?`` ("" means ``/``), then the canonical form
   (§5), so a hostile path raises ``BadRequestError`` whatever the (valid) host;
3. in the group: the exact path, else the longest prefix key on a segment boundary, else the
   group's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeAlias

from ._normalize import _PLAIN_RE, canonical_path, check_host, normalize_host, split_target

__all__ = ["HostGroup", "Matcher", "RouteMatcher"]

#: ``(host, exact, prefix, group_default)``: host is None for the host-less group,
#: ``"*.foo.com"`` for a wildcard, else a lower-case host; ``exact`` maps canonical paths to
#: payloads, ``prefix`` maps prefix keys (the canonical rule path without its trailing ``/``,
#: ``""`` for ``/``) to payloads.
HostGroup: TypeAlias = tuple[str | None, Mapping[str, object], Mapping[str, object], object | None]

_MISSING = object()
#: Matcher._vouched's bounds: how many hosts, and how long one may be (the compiled twin's
#: _HOST_MAX too: a DNS name is at most 253 characters; a longer Host, or one that long with a
#: port of more than two digits, is checked at each lookup).
_VOUCHED_MAX = 1024
_HOST_MAX = 256
#: ``(exact, prefix, group_default, longest prefix key length, the prefix keys' lengths)``.
_Group: TypeAlias = tuple[dict[str, object], dict[str, object], object, int, frozenset[int]]


class RouteMatcher(Protocol):
    """What both matcher implementations provide."""

    def lookup(self, host: str, path: str) -> object | None: ...


def _split_groups(
    groups: Sequence[HostGroup],
) -> tuple[dict[str, _Group], dict[str, _Group], _Group | None]:
    hosts: dict[str, _Group] = {}
    wild: dict[str, _Group] = {}
    hostless: _Group | None = None
    # A group named "" (RouteTable never makes one) is kept aside, for the duplicate check only:
    # an empty Host selects the host-less rules, and the compiled twin never reaches it either.
    unreachable: dict[str, _Group] = {}
    for host, exact, prefix, group_default in groups:
        lengths = frozenset(map(len, prefix))
        group: _Group = (dict(exact), dict(prefix), group_default, max(lengths, default=0), lengths)
        if host is None:
            if hostless is not None:
                raise ValueError("two host-less groups")
            hostless = group
            continue
        if host.startswith("*."):
            table, key = wild, host[2:]
        elif host:
            table, key = hosts, host
        else:
            table, key = unreachable, host
        if key in table:
            raise ValueError(f"duplicate host group {host!r}")
        table[key] = group
    return hosts, wild, hostless


class Matcher:
    """Host dict + per group an exact dict and a prefix dict probed by walking back over ``/``.

    >>> m = Matcher([("foo.com", {"/a": "exact /a"}, {"": "prefix /", "/a": "prefix /a"}, None)])
    >>> m.lookup("FOO.com:80", "/a"), m.lookup("foo.com", "/a/b?q"), m.lookup("foo.com", "/ab")
    ('exact /a', 'prefix /a', 'prefix /')
    """

    __slots__ = ("_hosts", "_wild", "_hostless", "_default", "_vouched")

    def __init__(self, groups: Sequence[HostGroup], default: object | None = None) -> None:
        self._hosts, self._wild, self._hostless = _split_groups(groups)
        self._default = default
        #: Raw hosts met before, checked then, and their group (in a 1-tuple: the group may be
        #: None). check_host's regex made a host with a port, in upper case or of a wildcard
        #: rule cost +30-47 % per lookup (s34 h2); a host seen again skips it and normalize_host
        #: (benchmarks/ab_host_forms.py). At most _VOUCHED_MAX hosts of _HOST_MAX characters.
        self._vouched: dict[str, tuple[_Group | None]] = {}

    def _group(self, host: str) -> _Group | None:
        # A dict key is lower-case, has no port, no trailing dot and no bracket, so a raw host
        # equal to a key is already normalised (and valid: a rule host is a DNS name): try it
        # before checking and normalising.
        group = self._hosts.get(host)
        if group is not None:
            return group
        known = self._vouched.get(host)
        if known is not None:
            return known[0]
        group = self._group_of_checked(host)
        if len(host) <= _HOST_MAX:
            vouched = self._vouched
            # Bounded: a client's random hosts empty it now and then, never grow it. Emptied,
            # not frozen once full: a flood of one-off hosts would keep real clients' hosts out
            # for the life of the table.
            if len(vouched) >= _VOUCHED_MAX:
                vouched.clear()
            vouched[host] = (group,)
        return group

    def _group_of_checked(self, host: str) -> _Group | None:
        # "bad input gets a clear error, never a wrong route": a Host the proxy answers 400
        # ("a b.foo.com", "foo.com:abc", "x\r\ny") is no host of any group (and never vouched).
        check_host(host)
        name = normalize_host(host)
        if name is None or name.startswith("["):
            # Empty Host, or an IPv6 literal: it "never equal[s] a rule host".
            return self._hostless
        group = self._hosts.get(name)
        if group is not None:
            return group
        # "*.foo.com matches bar.foo.com, not foo.com, not a.bar.foo.com": one non-empty label.
        dot = name.find(".")
        if dot > 0:
            group = self._wild.get(name[dot + 1 :])
            if group is not None:
                return group
        return self._hostless

    def lookup(self, host: str, path: str) -> object | None:
        """``table.match(host, path)``: the route of one request.

        ``host`` is the Host header as sent (any case, an optional ``:port``, ``[v6]``);
        ``path`` the request target's path, with its query if any. Returns the payload of the
        rule that matches (longest path wins), else that host's default, else the table's
        default, else None: in a ``RouteTable`` a :class:`Match`. Raises ``BadRequestError``
        (``status_hint`` 400) for a Host the proxy refuses (``_normalize.check_host``: a space,
        ``/``, ``@``, a bad port, an empty label...; ``""`` is no host) and for a path with no
        canonical form (SEMANTICS §5), the host first."""
        group = self._group(host)
        q = path.find("?")
        if q >= 0:
            if "#" in path:  # in the query too: a fragment is never sent (split_target)
                split_target(path)
            path = path[:q]
        if not path:
            path = "/"
        elif not (
            path[0] == "/"
            and "//" not in path
            and "/." not in path
            and _PLAIN_RE.fullmatch(path) is not None
        ):
            path = canonical_path(path)
        if group is None:
            return self._default
        exact, prefix, group_default, longest, lengths = group
        # "Exact: whole-string equality": an exact rule is as long as the path, so it is never
        # beaten by a prefix rule (equal length: "Exact beats Prefix").
        if exact:
            hit = exact.get(path, _MISSING)
            if hit is not _MISSING:
                return hit
        if prefix:
            # "Prefix: element-wise on /": the candidates are the path itself and the path cut
            # before each "/", longest first, down to "" (the rule "/").
            hit = prefix.get(path, _MISSING)
            if hit is not _MISSING:
                return hit
            # No key is longer than ``longest``: the first cut tried is the last "/" at or
            # before it. Starting at the path's end made a long path of many segments cost
            # segments x length (a slice per "/"): 1 MiB of "/x" took minutes.
            # A cut is sliced and probed only when some key is that long: one long rule of many
            # segments made every "/" below it cost a slice as long as the path (an 8 KiB
            # request against an 8 KiB rule: 4,000 slices, 16 MB hashed); now a lookup hashes
            # at most the path plus one slice per distinct key length.
            j = min(len(path), longest + 1)
            while j > 0:
                j = path.rfind("/", 0, j)
                if j in lengths:
                    hit = prefix.get(path[:j], _MISSING)
                    if hit is not _MISSING:
                        return hit
        return group_default
