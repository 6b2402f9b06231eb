"""Review of the matcher and the request path/host canonicalisation (session 19, Q19x).

- The pure twin's prefix probes: one long rule of many segments made every lookup that shares
  its first segments hash a slice per "/" (quadratic in the shared length); counted here.
- A group named "" answered an empty Host in the pure twin only.
- Hostile targets against an oracle written from SEMANTICS §4.1/§5 alone: the matchers' own
  oracle (tests/test_match.py) canonicalises with ``canonical_path`` itself, so a mistake there
  would be on both sides of its comparison; this one shares no code with ``_normalize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingresslib import _match_py
from ingresslib._errors import BadRequestError
from ingresslib._normalize import canonical_path, canonical_rule_path

from _matchers import MATCHER_PARAMS, built_classes, required
from _table_oracle import host_refused


@pytest.fixture(params=MATCHER_PARAMS)
def matcher_class(request: pytest.FixtureRequest) -> Any:
    return required(request.param)


# -- the pure twin's work on a long rule ------------------------------------------------------


class _CountingDict(dict[str, object]):
    """A prefix dict that adds up the length of every key it is asked for (the bytes a lookup
    slices and hashes)."""

    probed = 0

    def get(self, key: str, default: object = None) -> object:
        _CountingDict.probed += len(key)
        return super().get(key, default)


def _counting_pure_matcher(groups: Sequence[_match_py.HostGroup], host: str) -> Any:
    m = _match_py.Matcher(groups)
    g = m._hosts[host]
    m._hosts[host] = (g[0], _CountingDict(g[1]), *g[2:])
    return m


@pytest.mark.parametrize("segments", [500, 4000])
def test_pure_twin_hashes_a_path_sharing_a_long_rule_once(segments: int) -> None:
    # An 8 KiB rule path of 4,000 segments and an 8 KiB request (the proxy's request-line
    # limit) that follows it to its last segment: each "/" below the rule's length was a slice
    # of the path and a dict probe, 16 MB hashed (28 ms a request in the pure twin, 6 us in the
    # compiled one). Only cuts as long as some key are worth a probe.
    key = "/a" * segments
    groups: list[_match_py.HostGroup] = [("foo.com", {}, {key: "long", "/a": "short", "": "root"}, None)]
    m = _counting_pure_matcher(groups, "foo.com")
    for path, expected in [("/a" * (segments - 1) + "/b", "short"),
                           ("/b" + "/a" * segments, "root"),
                           (key + "/x" * segments, "long")]:
        _CountingDict.probed = 0
        assert m.lookup("foo.com", path) == expected
        assert _CountingDict.probed <= 2 * len(path), (path[:20], _CountingDict.probed)


_NESTED_SEGMENTS = ["a", "b", "ab", "a.b", "%C3%A9", "~"]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.lists(st.sampled_from(_NESTED_SEGMENTS), max_size=12), max_size=10),
       paths=st.lists(st.lists(st.sampled_from(_NESTED_SEGMENTS + ["", "x"]), max_size=14),
                      min_size=1, max_size=10))
def test_twins_agree_with_the_prefix_definition_on_deep_keys(keys: list[list[str]],
                                                            paths: list[list[str]]) -> None:
    # Keys of many lengths nested in one another: the probes skipped for lengths no key has
    # must never skip a key. "Prefix: element-wise on /", the longest key wins.
    prefix: dict[str, object] = {"/" + "/".join(k) if k else "": "P" + "/".join(k) for k in keys}
    m = [cls([("foo.com", {}, prefix, "D")]) for cls in built_classes()]
    for segs in paths:
        path = "/" + "/".join(segs)
        try:
            canon = canonical_path(path)
        except BadRequestError:
            continue
        hits = [k for k in prefix if canon == k or canon.startswith(k + "/")]
        expected = prefix[max(hits, key=len)] if hits else "D"
        assert [x.lookup("foo.com", path) for x in m] == [expected] * len(m), path


# -- a group named "" -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["", ":80", ".", ".:80"])
def test_a_group_named_empty_is_never_chosen(matcher_class: Any, host: str) -> None:
    # An empty Host (or one that is empty once normalised) "selects the host-less rules"; the
    # compiled twin never reached a group named "", the pure one answered "" with it. One
    # empty once normalised (":80", ".") is a Host the proxy refuses: 400 (session 34).
    m = matcher_class([("", {"/": "empty-named"}, {}, None), (None, {"/": "host-less"}, {}, None)])
    if host:
        with pytest.raises(BadRequestError):
            m.lookup(host, "/")
    else:
        assert m.lookup(host, "/") == "host-less"
    with pytest.raises(ValueError):
        matcher_class([("", {}, {}, None), ("", {}, {}, None)])


# -- hostile targets against an oracle written from SEMANTICS §4.1 and §5 alone ---------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCHAR = _UNRESERVED | frozenset("!$&'()*+,;=:@")
_HEX = frozenset("0123456789abcdefABCDEF")


class _Reject(Exception):
    pass


def _semantics_path(path: str) -> str:
    """SEMANTICS §5 read line by line, nothing from ``_normalize``."""
    if not path.startswith("/"):
        raise _Reject("origin-form only")
    out: list[str] = []
    decoded = bytearray()
    i = 0
    while i < len(path):
        c = path[i]
        if c == "%":
            # "`%` must be followed by two hex digits"
            code = path[i + 1:i + 3]
            if len(code) != 2 or not set(code) <= _HEX:
                raise _Reject("bad escape")
            b = int(code, 16)
            decoded.append(b)
            if chr(b) in _UNRESERVED:
                out.append(chr(b))                  # "decode escapes of unreserved characters once"
            elif b in (0x2F, 0x5C) or b < 0x20 or b == 0x7F:
                raise _Reject("escape of /, \\, NUL or a control")
            else:
                out.append("%" + code.upper())      # "other escapes stay, upper-case hex"
            i += 3
        elif c in _PCHAR or c == "/":               # "RFC 3986 pchar and /"
            decoded += c.encode("ascii")
            out.append(c)
            i += 1
        else:
            raise _Reject("not a path character")
    try:
        bytes(decoded).decode("utf-8")              # "the decoded bytes must be valid UTF-8"
    except UnicodeDecodeError:
        raise _Reject("not UTF-8") from None
    text = "".join(out)
    while "//" in text:                             # "Merge //"
        text = text.replace("//", "/")
    segments = text.split("/")[1:]
    kept: list[str] = []
    for n, seg in enumerate(segments):              # "then remove ./.. segments (RFC 3986 §5.2.4)"
        last = n == len(segments) - 1
        if seg in (".", ".."):
            if seg == "..":
                if not kept:
                    raise _Reject("'..' above root")
                kept.pop()
            if last:
                kept.append("")
            continue
        if seg.split(";", 1)[0] in (".", "..") and ";" in seg:   # "`..;` -> 400" (and ".;")
            raise _Reject("dot segment with parameters")
        kept.append(seg)
    return "/" + "/".join(kept)


def _semantics_host(host: str) -> str | None:
    """SEMANTICS §4.1: lower-case, strip :port (IPv6 literals keep their brackets), one dot."""
    h = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in host)
    if h.startswith("["):
        return h[:h.index("]") + 1] if "]" in h else h
    h = h.partition(":")[0]
    return (h[:-1] if h.endswith(".") else h) or None


def _semantics_lookup(groups: Sequence[_match_py.HostGroup], default: object, host: str,
                      target: str) -> object:
    if host_refused(host):                          # §4 "Host first"; §9 "bad Host values"
        raise _Reject("bad Host value")
    if "#" in target:
        raise _Reject("'#'")
    path = _semantics_path(target.partition("?")[0] or "/")
    name = _semantics_host(host)
    by_host = {g[0]: g for g in groups}
    chosen = None
    if name is not None and not name.startswith("["):
        chosen = by_host.get(name)
        label, dot, rest = name.partition(".")
        if chosen is None and label and dot:        # "*." covers exactly one first label
            chosen = by_host.get("*." + rest)
    if chosen is None:
        chosen = by_host.get(None)
    if chosen is None:
        return default
    _, exact, prefix, group_default = chosen
    if path in exact:
        return exact[path]
    hits = [k for k in prefix if path == k or path.startswith(k + "/")]
    return prefix[max(hits, key=len)] if hits else group_default


def _outcome(fn: Any, *args: Any) -> tuple[str, object]:
    try:
        return ("ok", fn(*args))
    except (BadRequestError, _Reject):
        return ("400", None)


_RULE_SEGMENTS = ["a", "A", "api", "v1", "%C3%A9", "caf%C3%A9", "%25", "%252e", ".well-known",
                  "admin;x", "~u", "%7E", "%3F", "a.b", "..a", "*", "@", ":x", "%E2%82%AC"]
_HOSTILE = ["/..", "/.", "/%2e%2e", "/%2E.", "/.%2e", "//", "///", ";", "/..;x", "/.;", "%",
            "%4", "%41", "%61", "%252e", "%c0%ae", "%e0%80%ae", "%ed%a0%80", "%ff", "%00",
            "%0a", "%7f", "%5c", "%2F", "%2f", "\\", "?", "?/..", "#", " ", "\t", "\x00", "é",
            "\x85", "\xff", "\u2025", "%3b", "/./", "/../", "%c3%a9", "%C3%a9"]
_HOST_NAMES = ["foo.test", "a.foo.test", "*.foo.test", "*.example.test", "b", "10.0.0.1",
               "xn--bcher-kva.example"]

_rule_path = (st.lists(st.sampled_from(_RULE_SEGMENTS + ["", ".", ".."]), max_size=5)
              .map(lambda s: "/" + "/".join(s))
              | st.sampled_from(["/", "", "/foo/", "/café", "/a b", "/a%2fb", "/a?b"]))


# The constant strategies below are built once, not at every draw: a new strategy object
# is validated again each time (a third of this test's time when built inside the draws).
_HOST_LISTS = st.lists(st.sampled_from(_HOST_NAMES), unique=True, max_size=4)
_RULES = st.lists(st.tuples(st.booleans(), _rule_path), max_size=6)
_WILDCARD_FILL = st.sampled_from(["t", "T", "", "a.b", "-"])
_ANY_HOST = st.text(max_size=8)
_SEP = st.sampled_from(["", "/"])
_SUFFIX = st.lists(st.sampled_from(_RULE_SEGMENTS + _HOSTILE + ["/", ""]), max_size=6)
_NOT_ORIGIN = st.sampled_from(["http://", "HTTP://", "http://a@b", "*", "?x"])


@st.composite
def _tables(draw: st.DrawFn) -> tuple[list[_match_py.HostGroup], object]:
    hosts: list[str | None] = list(draw(_HOST_LISTS))
    if draw(st.booleans()):
        hosts.append(None)
    groups: list[_match_py.HostGroup] = []
    for h in hosts:
        exact: dict[str, object] = {}
        prefix: dict[str, object] = {}
        for is_exact, written in draw(_RULES):
            try:
                canon = canonical_rule_path(written or "/")
            except BadRequestError:
                continue
            if is_exact:
                exact.setdefault(canon, f"{h} E {written}")
            else:
                prefix.setdefault(canon.rstrip("/"), f"{h} P {written}")
        groups.append((h, exact, prefix, f"{h} D" if draw(_SOME) else None))
    return groups, "DEFAULT" if draw(_SOME) else None


#: ``st.none() | st.just(x)`` made once (not at every draw): None, or True for x.
_SOME = st.none() | st.just(True)


def _host_spellings(h: str) -> list[str]:
    return [h, h.upper(), h + ":", h + ":0", h + ":99999", h + ".", h + "..", h + ".:80", "[::1]",
            "[::1]:80", "::1", f"[{h}]", "u@" + h, h + "/x", "\u212a" + h, "." + h, "", " " + h]


#: One of the 18 spellings of a rule's host (an index into ``_host_spellings``), or any host.
_HOST_SPELLING = st.sampled_from(tuple(range(18))) | _ANY_HOST
_MODE = st.integers(0, 4)
_QUERY = st.text(max_size=5)


@st.composite
def _requests(draw: st.DrawFn, groups: Sequence[_match_py.HostGroup]) -> tuple[str, str]:
    keys = [k for g in groups for k in (*g[1], *g[2])] or ["/"]
    names = [g[0] for g in groups if g[0]] or ["foo.test"]
    h = draw(st.sampled_from(names)).replace("*", draw(_WILDCARD_FILL))
    spelling = draw(_HOST_SPELLING)
    host = _host_spellings(h)[spelling] if isinstance(spelling, int) else spelling
    path = draw(st.sampled_from(keys)) or "/"
    sep = draw(_SEP)
    path += sep + sep.join(draw(_SUFFIX))
    mode = draw(_MODE)
    if mode == 1 and "%" in path:                   # mixed-case hex
        j = draw(st.integers(0, len(path) - 1))
        path = path[:j] + path[j:].swapcase()
    elif mode == 2:                                 # not origin-form
        path = draw(_NOT_ORIGIN) + path
    elif mode == 3:
        path += "?" + draw(_QUERY)
    return host, path


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_twins_agree_with_semantics_on_hostile_targets(data: st.DataObject) -> None:
    groups, default = data.draw(_tables())
    matchers = [cls(groups, default) for cls in built_classes()]
    for host, target in data.draw(st.lists(_requests(groups), min_size=1, max_size=12)):
        expected = _outcome(_semantics_lookup, groups, default, host, target)
        for m in matchers:
            assert _outcome(m.lookup, host, target) == expected, (type(m).__module__, host, target)
        path = target.partition("?")[0]
        if path and "#" not in target:
            assert _outcome(canonical_path, path) == _outcome(_semantics_path, path), path
