"""The canonical request path and host (SEMANTICS.md §4.1, §5), rule by rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib._errors import BadRequestError
from ingresslib._normalize import (
    canonical_path,
    canonical_rule_path,
    is_canonical,
    normalize_host,
    split_target,
)

# (request path, canonical form); each row names the §5 sentence it checks.
CANONICAL = [
    ("/", "/"),
    ("/foo/bar", "/foo/bar"),
    ("/foo/bar/", "/foo/bar/"),
    # "Path characters: RFC 3986 pchar and /": sub-delims, ":" and "@" stay as they are.
    ("/a:b@c!$&'()*+,;=d-._~", "/a:b@c!$&'()*+,;=d-._~"),
    ("/.well-known/acme", "/.well-known/acme"),
    ("/foo/..bar", "/foo/..bar"),
    ("/a/...", "/a/..."),
    ("/a/...;x", "/a/...;x"),
    ("/a;x/b", "/a;x/b"),
    # "Decode escapes of unreserved characters once (%61 -> a, %2e -> .)"
    ("/%61%62c", "/abc"),
    ("/%7Euser/%7euser", "/~user/~user"),
    ("/a%2Db%5F%2e", "/a-b_."),
    # "other escapes stay, upper-case hex"
    ("/a%3fb", "/a%3Fb"),
    ("/a%23b", "/a%23b"),
    ("/a%25", "/a%25"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/%e2%82%ac", "/%E2%82%AC"),
    ("/%F0%9F%98%80", "/%F0%9F%98%80"),
    # "never decode twice": %25 stays, so %252e is not '.'.
    ("/%252e%252e/x", "/%252e%252e/x"),
    ("/%2541", "/%2541"),
    # "Merge //"
    ("//", "/"),
    ("/a//b///c", "/a/b/c"),
    ("/a//", "/a/"),
    # "then remove ./.. segments (RFC 3986 §5.2.4)"
    ("/.", "/"),
    ("/./", "/"),
    ("/a/.", "/a/"),
    ("/a/./b", "/a/b"),
    ("/a/b/..", "/a/"),
    ("/a/b/../", "/a/"),
    ("/a/b/../c", "/a/c"),
    ("/a/..", "/"),
    ("/a/../..a", "/..a"),
    ("/a/b/../../c/./d/", "/c/d/"),
    # Decoding happens before dot removal: %2e%2e is "..".
    ("/a/%2e%2e/b", "/b"),
    ("/a/%2E/b", "/a/b"),
    ("/a/.%2e", "/"),
    # Merging happens before dot removal.
    ("/a/.//b", "/a/b"),
    ("/a/b//..", "/a/"),
]


@pytest.mark.parametrize(("path", "expected"), CANONICAL)
def test_canonical_path(path: str, expected: str) -> None:
    assert canonical_path(path) == expected
    assert is_canonical(expected)
    assert canonical_path(expected) == expected
    assert is_canonical(path) == (path == expected)


REJECTED = [
    # Origin-form only.
    "",
    "foo",
    "*",
    "http://h/a",
    # "`#` -> 400"
    "/a#b",
    "/#",
    # Not pchar: spaces, controls, quotes, brackets, backslash, '?' (the query is split first).
    "/a b",
    "/a\tb",
    "/a\x00",
    "/a\x7f",
    '/a"b',
    "/a<b>",
    "/a\\b",
    "/a[b]",
    "/a{b}",
    "/a|b",
    "/a^b",
    "/a`b",
    "/a?b",
    # non-ASCII raw characters
    "/café",
    "/a\u212a",
    "/\ud800",
    # "% must be followed by two hex digits"
    "/%",
    "/a%2",
    "/a%zz",
    "/a%%41",
    "/a%g0",
    # "escapes of /, \, NUL and controls -> 400"
    "/a%2fb",
    "/a%2Fb",
    "/a%5cb",
    "/a%5C",
    "/%00",
    "/%0a",
    "/%1F",
    "/%7f",
    # "the decoded bytes must be valid UTF-8"
    "/%c3",
    "/%c3%28",
    "/%ff",
    "/%80",
    "/%ed%a0%80",  # an encoded surrogate
    "/%c0%af",  # overlong '/'
    # "`..` above root -> 400"
    "/..",
    "/../a",
    "/a/../..",
    "/a/../../b",
    "/%2e%2e",
    "/%2E%2e/",
    "/.%2e/x",
    "//../a",
    # "`..;` -> 400" (and ".;", both as written and decoded)
    "/..;",
    "/..;x/a",
    "/a/..;jsessionid=1",
    "/a/.;x",
    "/a/%2e%2e;x",
    "/a/%2e;",
]


@pytest.mark.parametrize("path", REJECTED)
def test_canonical_path_rejects(path: str) -> None:
    with pytest.raises(BadRequestError) as info:
        canonical_path(path)
    assert info.value.status_hint == 400
    assert isinstance(info.value, ValueError)
    assert not is_canonical(path)


def test_rejection_message_quotes_a_cut_path() -> None:
    with pytest.raises(BadRequestError) as info:
        canonical_path("/\x1b[31m" + "a" * 500)
    message = str(info.value)
    assert "\x1b" not in message and len(message) < 200


RULE_PATHS = [
    ("/", "/"),
    ("/foo/", "/foo/"),
    ("/.well-known", "/.well-known"),
    # Characters that are not pchar are percent-encoded as UTF-8, upper-case hex.
    ("/café", "/caf%C3%A9"),
    ("/a b", "/a%20b"),
    ("/a#b", "/a%23b"),
    ("/a?b", "/a%3Fb"),
    ("/a%b", "/a%25b"),
    ("/a%4", "/a%254"),
    ("/a[0]", "/a%5B0%5D"),
    ("/€", "/%E2%82%AC"),
    # Existing escapes get the request treatment.
    ("/%7euser", "/~user"),
    ("/a%3f", "/a%3F"),
    # ImplementationSpecific paths are not validated: they are canonicalised like requests.
    ("/foo//bar/./baz/../x", "/foo/bar/x"),
    ("/api/(.*)", "/api/(.*)"),
]


@pytest.mark.parametrize(("path", "expected"), RULE_PATHS)
def test_canonical_rule_path(path: str, expected: str) -> None:
    assert canonical_rule_path(path) == expected


@pytest.mark.parametrize(
    "path", ["", "foo", "/a%2Fb", "/a%5cb", "/a%00", "/..", "/a/../..", "/..;x", "/a/.;", "/%c3", "/\ud800"]
)
def test_canonical_rule_path_rejects_paths_that_never_match(path: str) -> None:
    with pytest.raises(BadRequestError):
        canonical_rule_path(path)


HOSTS = [
    ("foo.com", "foo.com"),
    ("FOO.Com", "foo.com"),
    ("foo.com:8080", "foo.com"),
    ("foo.com:", "foo.com"),
    ("foo.com.", "foo.com"),
    ("Foo.COM.:443", "foo.com"),
    ("foo.com..", "foo.com."),  # one trailing dot only
    ("[::1]", "[::1]"),
    ("[::1]:8080", "[::1]"),
    ("[FE80::1]", "[fe80::1]"),
    ("10.0.0.1:80", "10.0.0.1"),
    ("", None),
    (":80", None),
    (".", None),
    # ASCII-only lower-casing (RFC 4343): the Kelvin sign must not become "k".
    ("\u212a8s.io", "\u212a8s.io"),
    ("İ.com", "İ.com"),
]


@pytest.mark.parametrize(("host", "expected"), HOSTS)
def test_normalize_host(host: str, expected: str | None) -> None:
    assert normalize_host(host) == expected


@given(st.text(alphabet=st.sampled_from("aZ.:[]-0\u212a\u0130\u00c9\u0391"), max_size=12)
       | st.text(max_size=12))
def test_normalize_host_against_its_definition(host: str) -> None:
    # The docstring read literally, with A-Z -> a-z the only case change (whatever shortcut
    # the code takes for ASCII text): the Kelvin sign, dotted I, É and Α stay as they are.
    h = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in host)
    if h.startswith("["):
        h = h[: h.index("]") + 1] if "]" in h else h
    else:
        h = h.split(":", 1)[0]
        h = h[:-1] if h.endswith(".") else h
    assert normalize_host(host) == (h or None)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/a", ("/a", None)),
        ("/a?", ("/a", "")),
        ("/a?b=1", ("/a", "b=1")),
        ("/a?b=1?c=/d", ("/a", "b=1?c=/d")),
        ("?x", ("", "x")),
        ("/a/%3F?q", ("/a/%3F", "q")),
    ],
)
def test_split_target(target: str, expected: tuple[str, str | None]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", ["/a#b", "/a?b#c", "#"])
def test_split_target_rejects_fragments(target: str) -> None:
    with pytest.raises(BadRequestError):
        split_target(target)


_PIECES = st.sampled_from(
    ["/", "//", ".", "..", "a", "b", "%2e", "%2E", "%2f", "%41", "%c3%a9", "%c3", "%25", ";", "~", "é", "%", "?"]
)
_PATHS = st.one_of(
    st.lists(_PIECES, max_size=12).map(lambda xs: "/" + "".join(xs)),
    st.text(max_size=40),
)


@given(_PATHS)
def test_canonical_path_is_idempotent_and_safe(path: str) -> None:
    try:
        out = canonical_path(path)
    except BadRequestError:
        assert not is_canonical(path)
        return
    assert canonical_path(out) == out
    assert out.startswith("/") and out.isascii()
    assert "//" not in out
    segments = out.split("/")
    assert "." not in segments and ".." not in segments
    # Only escapes that must stay escaped remain, in upper-case hex.
    for piece in out.split("%")[1:]:
        code = piece[:2]
        assert code == code.upper()
        assert chr(int(code, 16)) not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


@given(st.text(max_size=30))
def test_canonical_rule_path_matches_its_own_canonical_form(path: str) -> None:
    try:
        out = canonical_rule_path("/" + path)
    except BadRequestError:
        return
    assert is_canonical(out)
