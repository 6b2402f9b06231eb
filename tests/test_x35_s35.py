"""Session 35, x35: a second engineer's review of h4 (rewrite-target's regex on the decoded path).

Checked against nginx's source (nginx/nginx src/http), each point pinned below by a test or by
the properties at the end, which port the functions byte for byte (``_ngx_*``):

Found right (passed on h4's code):

1. ``$uri``: ngx_http_parse.c ``ngx_http_parse_complex_uri`` (run by
   ngx_http_request.c ``ngx_http_process_request_uri`` "if (r->complex_uri || r->quoted_uri
   || r->empty_path_in_uri)") decodes every ``%XX`` and feeds the decoded byte back through
   its states ("state = quoted_state; break;" without reading on), so ``%2E%2E`` is a ``..``
   segment, merges ``//`` (merge_slashes on, ingress-nginx's default) and resolves ``/./``
   and ``/../``. For every target the canonical path accepts (SEMANTICS §5), the canonical
   path with each ``%XX`` one byte (``_decoded_path``) is those bytes
   (``test_decoded_canonical_path_is_nginx_s_uri``).
2. The regex on those bytes: ngx_http_script.c ``ngx_http_script_regex_start_code`` ("if
   (code->uri) { e->line = r->uri; }") and PCRE without UTF mode agree with ``regex`` on
   latin-1 characters with IGNORECASE | ASCII for ``.``, classes, ``\\w``, ``\\s``, anchors,
   ``(?i)``, lazy groups and alternation with an empty branch (a group that took no part is
   empty: ``if (n < r->ncaptures)``): ``test_path_rewrite_is_nginx_s``.
3. Each group maps back to whole escapes (``_path_index``), and a path without "%" builds
   nothing new: ``_decoded_path`` returns the path itself (one ``in`` test, about 70 ns with
   the call) and ``_captures`` the match's own groups
   (``test_a_path_without_escapes_allocates_no_decoded_copy``). With escapes the decoding is
   about 1.4 µs for ``/api/users/caf%C3%A9/a%20b`` (a loaded machine), only on routes with a
   rewrite-target.
4. ``_redirect_capture`` / ``_unescape_redirect`` (NGX_ESCAPE_ARGS, then
   NGX_UNESCAPE_REDIRECT) agree with test_x26_s34's port on raw targets too
   (``test_location_is_nginx_s_on_raw_targets``).

Found wrong, fixed (each test marked DEFECT failed before the fix):

5. ``_escapes_captures`` modelled only ngx_http_parse_request_line's path states, where ``//``
   or ``/.`` end them; but those set ``r->complex_uri``, and ngx_http_parse_complex_uri then
   walks the whole path again, setting ``r->plus_in_uri`` at every ``+`` ("case '+':
   r->plus_in_uri = 1; /* fall through */" in sw_usual, sw_slash, sw_dot, sw_dot_dot; and at
   a decoded ``%2B``) and ``r->quoted_uri`` at every "%" ("case sw_quoted: r->quoted_uri =
   1;"), up to the first "?" or "#". So nginx escapes the captures exactly when the raw path
   (before "?" / "#") holds a "%" or a "+": ``//api/a+b``, ``/api/.x/a+b`` and ``/./a%61``
   escape, where h4 sent ``q=a+b`` (a space to the backend) and ``q=a&b`` (two arguments).
6. A rewrite-target URL's Location decided the escaping on the canonical path: the raw target
   now reaches ``RouteOptions.rewrite_redirect`` through ``location_redirect`` /
   ``redirect_for`` (the proxy core: the request line; IngressASGI: the scope's
   ``raw_path``), so both answer ``https://new.test/x?q=b%26c`` for ``/a%62&c``.
7. A literal ``%XX`` in the path of a rewrite-target went up as written; nginx copies the
   replacement's bytes into ``$uri`` as they are (ngx_http_script_compile: only "$" and "?"
   are special) and ngx_http_proxy_module.c ``ngx_http_proxy_create_request`` escapes the
   rewritten ``$uri`` with NGX_ESCAPE_URI ("if (r->quoted_uri || r->internal)", a rewrite
   sets ``r->internal``): ``/x%20y/$1`` goes up as ``/x%2520y/...``. Its arguments are copied
   as they are ("b->last = ngx_copy(b->last, r->args.data, r->args.len)"): ``%20`` stays.

Left documented (README): an escaped ``[``, ``]``, ``:``, ``@`` or sub-delim of the path
(``%2B``) is kept where nginx decodes it and sends the character (not a one-liner: it changes
the spelling of every rewritten path; the properties compare modulo that spelling).
"""

from __future__ import annotations

import re
import tracemalloc
from urllib.parse import unquote_to_bytes

from hypothesis import assume, given
from hypothesis import strategies as st

from ingresslib import BadRequestError
from ingresslib._normalize import canonical_path
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._actions import location_redirect
from ingresslib.proxy._annotations import (PREFIX, RouteOptions, _decoded_path,
                                           _escapes_captures, parse_route_options)

from test_h4_s35 import _escape_uri, _upstream_line
from test_x26_s34 import _asgi, _core, _ngx_escape_args, _ngx_unescape_redirect
from _proxy_harness import location

# --- nginx, byte for byte -------------------------------------------------------------------

#: ngx_http_parse.c ``usual``: the bytes no parser state looks at (bit set: usual).
_USUAL = (0x00000000, 0x7FFF37D6, 0xFFFFFFFF, 0x7FFFFFFF,
          0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def _usual(ch: int) -> bool:
    return bool(_USUAL[ch >> 5] & (1 << (ch & 0x1F)))


def _ngx_request_line_flags(target: bytes) -> tuple[bool, bool, bool]:
    """``(complex_uri, quoted_uri, plus_in_uri)`` after ngx_http_parse_request_line's
    ``sw_after_slash_in_uri`` / ``sw_check_uri`` / ``sw_uri`` over an origin-form target."""
    complex_uri = quoted = plus = False
    state = "after_slash"
    for ch in target[1:]:
        c = chr(ch)
        if state == "uri":
            if c == "#":
                complex_uri = True
            continue
        if state == "after_slash":
            if _usual(ch):
                state = "check"
            elif c in "./#":
                complex_uri, state = True, "uri"
            elif c == "%":
                quoted, state = True, "uri"
            elif c == "?":
                state = "uri"
            elif c == "+":
                plus = True
            else:
                state = "check"
            continue
        # sw_check_uri
        if _usual(ch) or c == ".":
            continue
        if c == "/":
            state = "after_slash"
        elif c == "%":
            quoted, state = True, "uri"
        elif c == "?":
            state = "uri"
        elif c == "#":
            complex_uri, state = True, "uri"
        elif c == "+":
            plus = True
    return complex_uri, quoted, plus


def _ngx_complex_uri(target: bytes) -> tuple[bytes, bool, bool] | None:
    """ngx_http_parse_complex_uri (merge_slashes on) over the target: ``($uri, quoted_uri,
    plus_in_uri)`` it sets, or None (400). Its states as written, a decoded byte fed back."""
    out = bytearray()
    quoted = plus = False
    state = quoted_state = "usual"
    decoded = 0
    i = 0
    ch = target[0]
    n = len(target)

    def back_to_slash() -> bool:
        del out[len(out) - 4 + 1:]  # "u -= 4" then find the "/" at or before u
        while out and out[-1] != 0x2F:
            out.pop()
        return bool(out)

    while True:
        c = chr(ch) if ch >= 0 else ""
        if state in ("usual", "slash", "dot", "dot_dot") and ch >= 0 and _usual(ch):
            out.append(ch)
            state = "usual"
        elif state == "quoted":
            quoted = True
            if c not in "0123456789abcdefABCDEF" or ch < 0:
                return None
            decoded, state = int(c, 16), "quoted_second"
        elif state == "quoted_second":
            if ch < 0 or c not in "0123456789abcdefABCDEF":
                return None
            ch = decoded * 16 + int(c, 16)
            if ch == 0:
                return None
            if ch in (0x25, 0x23, 0x3F):  # "%", "#", "?": written, not looked at again
                out.append(ch)
                state = "usual"
            else:
                plus = plus or ch == 0x2B
                state = quoted_state
                continue  # the decoded byte through the state it was found in
        elif ch < 0 or c in "?#":
            break
        elif c == "%":
            quoted_state, state = state, "quoted"
        elif state == "usual":
            out.append(ch)
            state = "slash" if c == "/" else "usual"
            plus = plus or c == "+"
        elif state == "slash":
            if c == ".":
                out.append(ch)
                state = "dot"
            elif c != "/":  # "//" merged
                out.append(ch)
                state = "usual"
                plus = plus or c == "+"
        elif state == "dot":
            if c == "/":
                out.pop()
                state = "slash"
            elif c == ".":
                out.append(ch)
                state = "dot_dot"
            else:
                out.append(ch)
                state = "usual"
                plus = plus or c == "+"
        else:  # dot_dot
            if c == "/":
                if not back_to_slash():
                    return None
                state = "slash"
            else:
                out.append(ch)
                state = "usual"
                plus = plus or c == "+"
        i += 1
        ch = target[i] if i < n else -1
    if state in ("quoted", "quoted_second"):
        return None
    if state == "dot":
        out.pop()
    elif state == "dot_dot" and not back_to_slash():
        return None
    return bytes(out), quoted, plus


def _ngx_uri(target: bytes) -> tuple[bytes, bool] | None:
    """nginx's ``$uri`` of an origin-form target and ``quoted_uri || plus_in_uri``
    (ngx_http_process_request_uri), or None: 400."""
    complex_uri, quoted, plus = _ngx_request_line_flags(target)
    if complex_uri or quoted:
        parsed = _ngx_complex_uri(target)
        if parsed is None:
            return None
        uri, q2, p2 = parsed
        return uri, quoted or plus or q2 or p2
    return target.partition(b"?")[0], plus


def _ngx_rewrite(rule_regex: str, target: str, request: bytes) -> bytes | None:
    """The request line's target nginx's ``rewrite "(?i)<rule_regex>" <target> break;`` +
    ``proxy_pass http://upstream_balancer;`` sends (ngx_http_script_regex_start_code /
    copy_capture_code / regex_end_code, ngx_http_proxy_create_request), or None: 400."""
    parsed = _ngx_uri(request)
    if parsed is None:
        return None
    uri, quoted = parsed
    _, has_args, args = request.partition(b"?")
    m = re.match(rule_regex.encode("utf-8"), uri, re.IGNORECASE)
    if m is None:
        # no rewrite: the unparsed URI (``valid_unparsed_uri``); ingresslib sends its
        # canonical form there (SEMANTICS §5), so compare the decoded path
        return _escape_uri(uri) + (b"?" + args if has_args else b"")
    add_args = not target.endswith("?")
    source = target if add_args else target[:-1]
    # the path and the arguments apart: a capture's decoded "?" is no "?" of the target
    # (ngx_http_script_start_args_code marks "e->args" at the target's own)
    path, new_args = bytearray(), bytearray()
    in_args = False
    for piece in re.split(r"(\$[1-9]|\?)", source):
        buf = new_args if in_args else path
        if piece == "?" and not in_args:
            in_args = True
        elif re.fullmatch(r"\$[1-9]", piece):
            n = int(piece[1])
            cap = (m.group(n) or b"") if n <= m.re.groups else b""
            buf += _ngx_escape_args(cap) if in_args and quoted else cap
        else:
            buf += piece.encode("utf-8")
    if in_args:
        if add_args and args:
            new_args += b"&" + args
    else:
        new_args = bytearray(args if add_args else b"")
    return _escape_uri(bytes(path)) + (b"?" + bytes(new_args) if new_args else b"")


# --- ingresslib ------------------------------------------------------------------------------


def _options(rule_path: str, target: str) -> RouteOptions:
    return parse_route_options({PREFIX + "use-regex": "true", PREFIX + "rewrite-target": target},
                               rule_path, ProxySettings())


def _ours(rule_regex: str, target: str, request: str) -> bytes | None:
    raw_path, has_args, args = request.partition("?")
    try:
        path = canonical_path(raw_path)
    except BadRequestError:
        return None
    return _options(rule_regex, target).rewrite_uri(
        path, args if has_args else None, request_uri=request).encode("ascii")


def _comparable(uri: bytes) -> tuple[bytes, list[bytes]]:
    """A request target with the spellings that differ without changing what a backend reads
    made equal: the path re-escaped with NGX_ESCAPE_URI (ingresslib keeps ``%2B`` where
    nginx sends ``+``: README), each argument decoded (nginx copies a capture's ``"`` raw
    where ingresslib keeps its canonical ``%22``)."""
    path, has_args, args = uri.partition(b"?")
    return (_escape_uri(unquote_to_bytes(path)),
            [unquote_to_bytes(a) for a in args.split(b"&")] if has_args else [])


# --- 5. quoted_uri / plus_in_uri: the whole path ----------------------------------------------


def test_a_plus_after_a_double_slash_still_escapes() -> None:
    # DEFECT: "/search?q=a+b" (h4: "//" ended the parser's path states, so no plus_in_uri);
    # nginx's complex-URI pass sets it, and escapes the capture: "a%2Bb".
    opts = _options("/api(/|$)(.*)", "/search?q=$2")
    assert opts.rewrite_uri("/api/a+b", None, request_uri="//api/a+b") == "/search?q=a%2Bb"
    assert opts.rewrite_uri("/api/.x/a+b", None, request_uri="/api/.x/a+b") == (
        "/search?q=.x/a%2Bb")


def test_an_escape_after_a_dot_segment_still_escapes() -> None:
    # DEFECT: "/search?q=a&b": "/./" set complex_uri, and the complex pass meets "%61"
    # ("case sw_quoted: r->quoted_uri = 1;").
    opts = _options("/api(/|$)(.*)", "/search?q=$2")
    assert opts.rewrite_uri("/api/a&b", None, request_uri="/./api/%61&b") == "/search?q=a%26b"


def test_the_arguments_and_a_fragment_set_no_flag() -> None:
    # parse_complex_uri stops at "?" ("goto args") and "#" ("goto done")
    assert not _escapes_captures("/api/a?x=%20+")
    assert not _escapes_captures("/api/a#%20+")
    assert _escapes_captures("/api/a+b?x=1")


@given(st.lists(st.sampled_from(["/", ".", "..", "%", "%2B", "+", "?", "#", "a", "%20"]),
                max_size=12))
def test_escaping_is_nginx_s_flags(parts: list[str]) -> None:
    raw = "/" + "".join(parts)
    expected = _ngx_uri(raw.encode())
    assume(expected is not None)  # a "%" without its digits, "/.." above the root: 400
    assert expected is not None
    assert _escapes_captures(raw) == expected[1]


# --- 6. a rewrite-target URL: the raw target decides, in the core and in IngressASGI ----------

_URL_TARGET = {PREFIX + "use-regex": "true", PREFIX + "rewrite-target": "https://new.test/x?q=$1"}


def test_a_url_target_escapes_by_the_raw_target_in_the_core() -> None:
    # DEFECT: "https://new.test/x?q=(.*)/b&c": the canonical "/a(.*)/b&c" has no "%";
    # nginx saw "%62" and escaped "&" (NGX_UNESCAPE_REDIRECT stops at the target's "?", so
    # it stays). (test_x26_s34's rule "/a(.*)" is routed by its literal prefix.)
    out = _core(_URL_TARGET, "GET", "/a(.*)/%62&c")
    assert location(out) == b"https://new.test/x?q=(.*)/b%26c"
    assert location(_core(_URL_TARGET, "GET", "//a(.*)/+c")) == (
        b"https://new.test/x?q=(.*)/%2Bc")


def test_a_url_target_escapes_by_the_raw_path_in_ingress_asgi() -> None:
    # DEFECT: the same Location from IngressASGI (the scope's raw_path).
    assert _asgi(_URL_TARGET, "GET", "/a(.*)/%62&c") == (
        302, b"https://new.test/x?q=(.*)/b%26c")
    assert _asgi(_URL_TARGET, "GET", "/a(.*)/b&c") == (302, b"https://new.test/x?q=(.*)/b&c")


def test_location_redirect_takes_the_raw_path() -> None:
    opts = _options("/a(.*)", "https://new.test/x?q=$1")
    assert location_redirect(opts, "/ab&c", None, "/a%62&c") == (
        302, b"https://new.test/x?q=b%26c")
    assert location_redirect(opts, "/ab&c", None) == (302, b"https://new.test/x?q=b&c")


# --- 7. a literal escape of the target's path ------------------------------------------------


def test_a_literal_escape_in_the_target_path_is_escaped_again() -> None:
    # DEFECT: "/x%20y/b": nginx's $uri holds the replacement's "%20" as three bytes, and
    # NGX_ESCAPE_URI sends "%2520".
    opts = _options("/a/(.*)", "/x%20y/$1?k=%20")
    assert opts.rewrite_uri("/a/b", None) == "/x%2520y/b?k=%20"
    assert _upstream_line("/a/(.*)", "/x%7E/$1", b"/a/b") == b"GET /x%257E/b HTTP/1.1"
    # a non-ASCII character is its UTF-8 bytes, escaped once (nginx.conf holds the bytes)
    assert _options("/a/(.*)", "/é/$1").rewrite_uri("/a/b", None) == "/%C3%A9/b"
    # a URL target keeps its escapes for NGX_UNESCAPE_REDIRECT (test_x26_s34)
    assert location_redirect(_options("/a/(.*)", "https://n.test/%7E$1"), "/a/b", None) == (
        302, b"https://n.test/~b")


# --- 3. the cost of a path without escapes ---------------------------------------------------


def test_a_path_without_escapes_allocates_no_decoded_copy() -> None:
    path = "/api/" + "a" * 400
    decoded, escapes = _decoded_path(path)
    assert decoded is path and escapes is None  # the path itself, no list
    opts = _options("/api(/|$)(.*)", "/api/$2")
    opts.rewrite_uri(path, None)  # warm (the regex's own caches)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        _decoded_path(path)
        decoding_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoding_peak < len(path)  # no copy of the path was made on the way


# --- the properties: raw targets, patterns, nginx byte for byte -----------------------------

_PIECES = ["/", "//", ".", "..", "%2E", "%2e", "+", "%2B", ";", "a", "Z", "%C3%A9", "%20", "%25",
           "%3F", "%23", "%7E", "%61", "_", "~", "&", "=", "@", ":", "!", "%5B", "%26", "%3B",
           "%22", "api", "a" * 40, "%C3%A9" * 30]

_REGEXES = ["/(.)(.*)", "/api(/|$)(.*)", "(?i)/API(/|$)(.*)", "/([^/]*)/?(.*)",
            r"/(\w*)(\W?)(.*)", "/(a|)(.*)", r"/(.*?)(\.|;)?$", "^/(.+)$", r"/([\x80-\xff]+)(.*)",
            r"/(\S*)\s?(.*)", "/([a-z]+|[0-9]+|)(.*)"]

_TARGETS = ["/r/$1/$2", "/r/$2?q=$1", "/x%20y/$1", "/r/$1?", "/s?a=$1&b=$2", "/é/$1$2",
            "/r/$3/$1"]


@given(st.lists(st.sampled_from(_PIECES), max_size=16))
def test_decoded_canonical_path_is_nginx_s_uri(parts: list[str]) -> None:
    raw = "/" + "".join(parts)
    try:
        path = canonical_path(raw)
    except BadRequestError:
        path = None
    assume(path is not None)
    assert path is not None
    nginx = _ngx_uri(raw.encode())
    assert nginx is not None, raw  # nginx answers 400 what the proxy routes
    assert _decoded_path(path)[0].encode("latin-1") == nginx[0]


def _assert_rewrite_is_nginx_s(parts: list[str], rule_regex: str, target: str,
                               query: str | None) -> None:
    """The request ``/`` + ``parts`` (+ ``?query``) rewritten by ours and by the port of
    nginx: the same upstream target (``_comparable``: a "/x?" is told from "/x"). Requests
    the rule regex does not match are discarded (``assume``)."""
    request = "/" + "".join(parts) + ("" if query is None else "?" + query)
    ours = _ours(rule_regex, target, request)
    assume(ours is not None)
    assert ours is not None
    nginx = _ngx_rewrite(rule_regex, target, request.encode("utf-8"))
    assert nginx is not None
    assert _comparable(ours) == _comparable(nginx)


@given(st.lists(st.sampled_from(_PIECES), max_size=16), st.sampled_from(_REGEXES),
       st.sampled_from(_TARGETS), st.sampled_from([None, "", "x=1", "a=%20+b"]))
def test_path_rewrite_is_nginx_s(parts: list[str], rule_regex: str, target: str,
                                 query: str | None) -> None:
    _assert_rewrite_is_nginx_s(parts, rule_regex, target, query)


def _ngx_location(target: str, request: bytes) -> bytes | None:
    """test_x26_s34's ``_nginx_location`` on a raw request: the flags and ``$uri`` of nginx."""
    parsed = _ngx_uri(request)
    assert parsed is not None
    uri, quoted = parsed
    _, has_args, args = request.partition(b"?")
    m = re.match(rb"/a(.*)", uri, re.IGNORECASE)
    if m is None:
        return None
    add_args = not target.endswith("?")
    source = target if add_args else target[:-1]
    buf = b""
    for piece in re.split(r"(\$[1-9])", source):
        if re.fullmatch(r"\$[1-9]", piece):
            cap = (m.group(1) or b"") if piece == "$1" else b""
            # Not quoted (no "%" in the path), the capture holds no decoded byte: the bytes
            # as they came, which ingresslib copies too.
            buf += _ngx_escape_args(cap) if quoted else cap
        else:
            buf += piece.encode("ascii")
    buf = _ngx_unescape_redirect(buf)
    if add_args and args:
        buf += (b"&" if "?" in source else b"?") + args
    return buf


@given(st.lists(st.sampled_from(_PIECES), max_size=12),
       st.sampled_from(["https://new.test/$1", "https://new.test/x?q=$1", "https://n.test/$1?"]),
       st.sampled_from([None, "", "x=1"]))
def test_location_is_nginx_s_on_raw_targets(parts: list[str], target: str,
                                            query: str | None) -> None:
    raw_path = "/a" + "".join(parts)
    try:
        path = canonical_path(raw_path)
    except BadRequestError:
        path = None
    assume(path is not None)
    assert path is not None
    request = raw_path + ("" if query is None else "?" + query)
    got = location_redirect(_options("/a(.*)", target), path, query, raw_path)
    expected = _ngx_location(target, request.encode())
    assert (None if got is None else got[1]) == expected
