"""Session 35, h4: a ``rewrite-target`` rule regex runs on the decoded path, as nginx's.

nginx's ``rewrite`` matches the decoded ``$uri``: every ``%XX`` is one byte there, and PCRE runs
without UTF mode (``.`` is one byte, ``\\w`` and case folding ASCII only). ingresslib ran the
regex on its canonical path (SEMANTICS §5: unreserved escapes decoded, every other ``%XX``
kept), so a group of fixed width split an escape: ``/files/(.)(.*)`` on ``/files/%20bc`` gave
``$1 = "%"`` and ``$2 = "20bc"``, and the upstream got ``/x/%/20bc`` where nginx sends
``/x/%20/bc``. Character classes saw ``%20`` where nginx sees a space, and a regex spelling a
non-ASCII character literally never matched. Now the regex runs over the path decoded to bytes
(latin-1 characters) and each group maps back to whole escapes of the canonical path.

The escaping of the captures (``quoted_uri`` / ``plus_in_uri``) follows the request target as
received where the proxy core has it: nginx sets the flags from the raw request line
(ngx_http_parse.c ``ngx_http_parse_request_line``), so ``/api/%61&b`` (canonical ``/api/a&b``)
escapes. (Session 35 x35: ``//api/a+b`` escapes too, ngx_http_parse_complex_uri sets the flags
over the whole path; test_x35_s35 ports both parsers.)

Each test marked DEFECT failed before the fix.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import unquote_to_bytes

from hypothesis import given
from hypothesis import strategies as st

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._actions import location_redirect
from ingresslib.proxy._annotations import PREFIX, RouteOptions, parse_route_options

from _proxy_harness import ProxyPair, Route


def _options(rule_path: str, target: str, use_regex: bool = True) -> RouteOptions:
    ann = {PREFIX + "rewrite-target": target}
    if use_regex:
        ann[PREFIX + "use-regex"] = "true"
    return parse_route_options(ann, rule_path, ProxySettings())


def _upstream_line(rule_path: str, target: str, request_target: bytes) -> bytes:
    route = Route("/", annotations={PREFIX + "use-regex": "true",
                                    PREFIX + "rewrite-target": target})
    pair = ProxyPair([route])
    assert route.match is not None
    route.match = replace(route.match, path=rule_path)  # the FakeRouter routes by prefix
    pair.send(b"GET %s HTTP/1.1\r\nHost: example.test\r\n\r\n" % request_target)
    return bytes(pair.upstreams[0].raw).split(b"\r\n", 1)[0]


def test_a_fixed_width_group_takes_a_whole_escape_through_the_proxy() -> None:
    # DEFECT: "GET /x/%/20bc HTTP/1.1" (the group split "%20").
    assert _upstream_line("/files/(.)(.*)", "/x/$1/$2", b"/files/%20bc") == (
        b"GET /x/%20/bc HTTP/1.1")


def test_a_class_sees_the_decoded_character() -> None:
    # DEFECT: "[^ ]+" took "a%20b" whole (no space in the canonical form).
    assert _options("/s/([^ ]+)(.*)", "/t/$1/$2").rewrite_uri("/s/a%20b", None) == "/t/a/%20b"
    # "\s" is a space there too
    assert _options(r"/s/(\S+)\s(.*)", "/t/$1/$2").rewrite_uri("/s/a%20b", "q=1") == (
        "/t/a/b?q=1")


def test_dot_is_one_byte_of_a_utf8_character() -> None:
    # DEFECT: "/v/%/C3%A9x". PCRE without UTF mode: "." is the byte 0xC3; nginx re-escapes
    # each byte with NGX_ESCAPE_URI when it proxies the rewritten $uri.
    assert _options("/u/(.)(.*)", "/v/$1/$2").rewrite_uri("/u/%C3%A9x", None) == "/v/%C3/%A9x"
    assert _upstream_line("/u/(.)(.*)", "/v/$1/$2", b"/u/%c3%a9x") == b"GET /v/%C3/%A9x HTTP/1.1"


def test_a_url_target_s_location_takes_whole_escapes() -> None:
    # DEFECT: "https://new.test/%25/20bc" (the capture "%" escaped by NGX_ESCAPE_ARGS).
    opts = _options("/files/(.)(.*)", "https://new.test/$1/$2")
    assert location_redirect(opts, "/files/%20bc", None) == (302, b"https://new.test/%20/bc")


def test_a_literal_non_ascii_rule_regex_matches_the_utf8_bytes() -> None:
    # DEFECT: no rewrite ("/caf%C3%A9/x" forwarded unchanged): the regex's "é" never met a
    # canonical path. nginx compiles the UTF-8 bytes of nginx.conf and matches the bytes.
    assert _options("/café/(.*)", "/n/$1").rewrite_uri("/caf%C3%A9/x", None) == "/n/x"


def test_case_folding_is_ascii_only() -> None:
    # "ã" is the bytes C3 A3; as latin-1 characters, Unicode case folding would take C3 ("Ã")
    # for E3 ("ã") and match "%E3%A3%81" (U+38C1). PCRE's default tables fold ASCII only.
    opts = _options("/ã(.*)", "/n/$1")
    assert opts.rewrite_uri("/%E3%A3%81", None) == "/%E3%A3%81"
    assert opts.rewrite_uri("/%C3%A3%81", None) == "/n/%81"
    assert _options("/API/(.*)", "/n/$1").rewrite_uri("/api/x", None) == "/n/x"


def test_a_literal_rule_path_still_rewrites_everything_it_routes() -> None:
    # Without use-regex: the canonical rule path, escaped, matched on the decoded path.
    opts = _options("/café", "/", use_regex=False)
    assert opts.rewrite_uri("/caf%C3%A9/x%20y", None) == "/"
    assert _options("/a b", "/n", use_regex=False).rewrite_uri("/a%20b/c", None) == "/n"


def test_quoted_uri_follows_the_request_target_as_received() -> None:
    # DEFECT: "/search?q=a&b": the canonical "/api/a&b" has no "%", the request had "%61"
    # (ngx_http_parse_request_line: "case '%': r->quoted_uri = 1").
    assert _upstream_line("/api(/|$)(.*)", "/search?q=$2", b"/api/%61&b") == (
        b"GET /search?q=a%26b HTTP/1.1")


def test_a_dot_or_double_slash_does_not_stop_noting_escapes() -> None:
    # (session 35 x35) "//" and "/." leave the request line's path states with complex_uri
    # set, and ngx_http_parse_complex_uri then notes every "%" and "+" of the path.
    opts = _options("/api(/|$)(.*)", "/search?q=$2")
    assert opts.rewrite_uri("/api/a+b", None, request_uri="//api/a+b") == "/search?q=a%2Bb"
    assert opts.rewrite_uri("/api/a+b", None, request_uri="/api/a+b") == "/search?q=a%2Bb"
    assert opts.rewrite_uri("/api/a&b", None, request_uri="/./api/%61&b") == "/search?q=a%26b"
    assert opts.rewrite_uri("/api/a&b", None, request_uri="/+//api/a&b") == "/search?q=a%26b"
    assert opts.rewrite_uri("/api/a&b", None, request_uri="//api/a&b") == "/search?q=a&b"
    # the arguments set no flag: the parser is in sw_uri after "?"
    assert opts.rewrite_uri("/api/a&b", "x=%20+", request_uri="/api/a&b?x=%20+") == (
        "/search?q=a&b&x=%20+")


def test_a_path_without_escapes_is_matched_as_it_is() -> None:
    opts = _options("/api(/|$)(.*)", "/n/$2")
    assert opts.rewrite_uri("/api/a/b", "q=1") == "/n/a/b?q=1"
    assert opts.rewrite_uri("/other", None) == "/other"


# ---- the property: the captures are nginx's ------------------------------------------------

#: ngx_string.c ``ngx_escape_uri`` NGX_ESCAPE_URI's table: what nginx escapes when it proxies
#: a rewritten ``$uri`` (ngx_http_proxy_create_request, ``r->internal``).
_NGX_ESCAPE_URI = frozenset(range(0x21)) | frozenset(b'"#%<>?\\^`{|}') | frozenset(range(0x7F, 256))


def _escape_uri(raw: bytes) -> bytes:
    return b"".join(b"%%%02X" % c if c in _NGX_ESCAPE_URI else bytes([c]) for c in raw)


def _reference_uri(rule_regex: str, target: str, canonical: str) -> bytes:
    """nginx's upstream path for a target without arguments: the decoded ``$uri`` matched in
    bytes mode, the groups copied, the result escaped with NGX_ESCAPE_URI."""
    decoded = unquote_to_bytes(canonical)
    m = re.match(rule_regex.encode("utf-8"), decoded, re.IGNORECASE)
    if m is None:
        return _escape_uri(decoded)
    groups = m.groups()

    def group(g: re.Match[bytes]) -> bytes:
        i = int(g.group(1))
        return (groups[i - 1] or b"") if i <= len(groups) else b""
    return _escape_uri(re.sub(rb"\$([1-9])", group, target.encode("ascii")))


_ESCAPES = ["%20", "%25", "%C3%A9", "%E2%82%AC", "%3F", "%23", "%22", "%2B", "%5B", "%7B"]
_LITERALS = list("abcAB09-._~+&;=:@/")
_REGEXES = ["/(.)(.*)", "/(..)(.)", "/([^ ]+) ?(.*)", r"/(\S*)\s(.*)", r"/(\w+)(.*)",
            "/(.*?)(.)$", "/([a-z]*)([^a-z]*)", r"/(.)(\?)?(.*)", "/(é)?(.*)", "/((.)(.))(.*)",
            r"/([\x80-\xff]+)(.*)"]
_TARGET = "/r/$1/$2/$3/$4"


@given(st.lists(st.sampled_from(_ESCAPES + _LITERALS), max_size=12), st.sampled_from(_REGEXES))
def test_captures_are_nginx_s(parts: list[str], rule_regex: str) -> None:
    canonical = "/" + "".join(parts).replace("//", "/x/")
    ours = _options(rule_regex, _TARGET).rewrite_uri(canonical, None)
    # Every capture is whole escapes of the canonical path: re-escaped with nginx's table,
    # the bytes are nginx's (the canonical spelling differs only where NGX_ESCAPE_URI leaves
    # a character as it is: "%2B" is "+" there, "%5B" "[").
    assert re.search(r"%(?![0-9A-F]{2})", ours) is None
    assert _escape_uri(unquote_to_bytes(ours)) == _reference_uri(rule_regex, _TARGET, canonical)
