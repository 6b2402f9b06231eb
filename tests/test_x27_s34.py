"""Session 34, x27: a review of h2 (the matchers refuse a Host the proxy refuses).

* The differential tests drew their hosts from ten spellings of a rule host or any text
  (``test_match._HOST_FORM``): arbitrary text is mostly non-ASCII, refused at once, so the
  hosts where the compiled fast and slow paths and ``check_host`` part (an empty label next to
  a rule host, ports 0 / 65536 / 00080, a leading dot, ``_``, ``[v6]:port``, a dot before the
  port) were seldom drawn. Here hosts are built from rule hosts and those pieces, and both
  matchers must agree with each other and with the proxy's rule (``host_problem``).
* The pure twin vouches for a host once (``Matcher._vouched``): check_host's regex cost it
  +30-47 % per lookup on hosts with a port or of a wildcard rule. The cache is bounded and
  never holds a refused host.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import _match_py
from ingresslib._errors import BadRequestError
from ingresslib._normalize import host_problem

from _matchers import MATCHER_PARAMS, built_classes, required
from _table_oracle import host_refused

#: Exact, wildcard and host-less groups, with hosts that share labels.
GROUPS: list[_match_py.HostGroup] = [
    ("foo.com", {}, {"": "foo.com"}, None),
    ("a.foo.com", {}, {"": "a.foo.com"}, None),
    ("*.foo.com", {}, {"": "*.foo.com"}, None),
    ("b", {}, {"": "b"}, None),
    ("*.b", {}, {"": "*.b"}, None),
    ("0.1", {}, {"": "0.1"}, None),
    (None, {}, {"": "host-less"}, None),
]

#: Pieces of a Host: rule hosts and their labels, and what the rule refuses or normalises.
_PIECES = ["foo.com", "a.foo.com", "foo", "com", "b", "a", "x", "0", "1", "FOO", "A", "xn--bcher-kva",
           ".", "..", ":", ":80", ":0", ":00080", ":65535", ":65536", ":123456", ":", "-", "_",
           "[::1]", "[", "]", " ", "\t", "\x00", "/", "@", "%", "~", "\u00e4", "\u212a", "9" * 64]

_HOSTS = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)


def outcome(lookup: Any, host: str) -> tuple[str, object]:
    try:
        return ("ok", lookup(host, "/"))
    except BadRequestError as exc:
        assert exc.status_hint == 400
        return ("400", str(exc))


@settings(max_examples=1500)
@given(hosts=st.lists(_HOSTS, min_size=1, max_size=20))
def test_both_matchers_refuse_exactly_what_the_proxy_refuses(hosts: list[str]) -> None:
    matchers = [cls(GROUPS, "default") for cls in built_classes()]
    for host in hosts:
        # Each matcher twice: the pure twin's second answer may come from its cache.
        results = [outcome(m.lookup, host) for m in matchers for _ in range(2)]
        assert all(r == results[0] for r in results), (host, results)
        refused = results[0][0] == "400"
        assert refused == (host_problem(host) is not None) == host_refused(host), host
        if refused:
            assert repr(host)[:30] in str(results[0][1])  # named, quoted


def test_a_host_seen_again_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    real = _match_py.check_host
    monkeypatch.setattr(_match_py, "check_host", lambda host: (checked.append(host), real(host))[1])
    m = _match_py.Matcher(GROUPS, "default")
    for host in ["FOO.com:8080", "x.foo.com", "FOO.com:8080", "x.foo.com", "other.net", "FOO.com:8080"]:
        m.lookup(host, "/")
    assert checked == ["FOO.com:8080", "x.foo.com", "other.net"]
    assert m.lookup("foo.com", "/") == "foo.com" and len(checked) == 3  # a rule's own name: no check


@pytest.mark.parametrize("host", ["a..foo.com", "foo.com:0", "foo.com:65536", "a b.foo.com", "\u212a.foo.com"])
def test_a_refused_host_is_never_vouched(host: str) -> None:
    m = _match_py.Matcher(GROUPS, "default")
    for _ in range(2):
        with pytest.raises(BadRequestError):
            m.lookup(host, "/")
    assert host not in m._vouched


def test_the_vouched_hosts_are_bounded() -> None:
    # A client sending random hosts must not grow the cache without bound (nor with long ones).
    m = _match_py.Matcher(GROUPS, "default")
    rng = random.Random(34)
    for i in range(3 * _match_py._VOUCHED_MAX):
        host = f"{rng.getrandbits(64):x}.foo.com:{1 + i % 65535}"
        assert m.lookup(host, "/") == "*.foo.com"
        assert len(m._vouched) <= _match_py._VOUCHED_MAX
    long_host = "x" * (_match_py._HOST_MAX + 1)
    assert m.lookup(long_host, "/") == "host-less"
    assert long_host not in m._vouched


@pytest.mark.parametrize("cls", MATCHER_PARAMS)
@pytest.mark.parametrize(("host", "expected"), [
    ("FOO.com:8080", "foo.com"),
    ("x.Foo.com.", "*.foo.com"),
    ("a.foo.com.:443", "a.foo.com"),
    ("[::1]:80", "host-less"),
    ("localhost", "host-less"),
    ("xn--bcher-kva.b", "*.b"),
    ("0.1", "0.1"),               # digits-only labels are a name here, as in nginx
    ("0.1:80", "0.1"),
    ("127.0.0.1:8080", "host-less"),
    ("foo_bar.b", "*.b"),         # "_": nginx's ngx_http_validate_host takes it, so does the proxy
    # A leading dot: nginx's ngx_http_validate_host takes it (no "." before it), and a
    # wildcard covers one non-empty label (SEMANTICS §4): the host-less rules.
    (".foo.com", "host-less"),
    ("", "host-less"),            # no host at all
])
def test_valid_hosts_route_the_same_in_both_matchers_and_again(cls: Any, host: str, expected: str) -> None:
    m = required(cls)(GROUPS, "default")
    assert host_problem(host) is None
    assert m.lookup(host, "/") == expected
    assert m.lookup(host, "/") == expected  # the pure twin's vouched answer
