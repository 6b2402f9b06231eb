"""Session 35, x38: a third look at rewrite-target (x35's three changes on top of h4).

Checked against nginx's source (nginx/nginx src/http) and ingress-nginx's template, and found
right (the tests below pin what no earlier module does):

1. x35's (1), captures escaped whenever the raw path holds a "%" or a "+":
   ngx_http_parse.c ``usual`` (0x7fff37d6 for 0x20-0x3F) leaves "+" and "%" out, so every
   state of ``ngx_http_parse_complex_uri`` reaches "case '+': r->plus_in_uri = 1; /* fall
   through */" (sw_usual, sw_slash, sw_dot, sw_dot_dot) and "case sw_quoted: r->quoted_uri =
   1;", up to "?" ("goto args") or "#" ("goto done"); ngx_http_parse_request_line leaves its
   path states (which set the same flags) only at "?" unless "//", "/." or "#" set
   ``complex_uri`` or a "%" set ``quoted_uri`` -- and either makes
   ngx_http_process_request_uri run the complex pass over the whole path. So the flags are
   "a '%' or '+' in the path before '?' / '#'", x35's ``_escapes_captures``.
   ngx_http_script.c ``ngx_http_script_copy_capture_code`` escapes with NGX_ESCAPE_ARGS
   "if ((e->is_args || e->quote) && (quoted_uri || plus_in_uri))": ``e->quote =
   code->redirect`` (a URL target: every capture), ``e->is_args`` after the target's first
   "?" (``ngx_http_script_start_args_code``; ngx_http_rewrite sets ``sc.compile_args =
   !regex->redirect``, so a URL target has no argument part of its own).
2. x35's (2), a URL target's Location decided on the raw target: every caller of
   ``location_redirect`` passes it -- the proxy core's ``_routed_redirect`` (also when no
   ssl-redirect applies: ``opts.rewrite_is_redirect``) and ``_redirect_unrouted`` (through
   ``_unrouted_answer``), IngressASGI's routed branch and ``_unrouted_answer`` (its
   ``raw_path``), and ``explain``, which asks the proxy core itself (_explain_verdict.py). On
   an unrouted request the server's ``location /`` is parsed with the rule path "/"
   (``_unrouted_options``: ``parse_route_options(ann, None, ...)``), as ingress-nginx's
   ``location /`` writes ``rewrite "(?i)/" ...``: no group, so no capture to escape. The hot
   path pays nothing: the new ``elif opts.rewrite_is_redirect`` runs only inside ``if has_tls
   or opts.force_ssl_redirect or opts.redirects`` (proxy core and IngressASGI alike), and
   ``rewrite_is_redirect`` is read nowhere else per request; no timing A/B was needed.
3. x35's (3), a literal ``%XX`` of a path target sent as ``%25XX``: ngx_http_script_compile
   treats only "$" and "?" in the replacement; ``ngx_http_script_regex_end_code`` unescapes
   only a redirect ("if (code->redirect) { ... ngx_unescape_uri(..., NGX_UNESCAPE_REDIRECT)"),
   a path rewrite becomes ``r->uri`` as built; ``regex_start_code`` sets ``r->internal = 1``;
   ingress-nginx's template.go ``buildProxyPass`` writes ``rewrite "(?i)%s" %s break;`` then
   ``proxy_pass http://upstream_balancer;`` -- no URI (``$scheme://`` for AUTO_HTTP: variables,
   still no URI) -- so ngx_http_proxy_module.c ``ngx_http_proxy_create_request`` takes its last
   branch, "if (r->quoted_uri || r->internal) { escape = 2 * ngx_escape_uri(..., r->uri...,
   NGX_ESCAPE_URI)", and copies ``r->args`` as they are. ngx_string.c's NGX_ESCAPE_URI table
   (0xd000002d, 0x50000000, 0xb8000001: space, ``"#%<>?\\^`{|}``, controls, DEL and up) holds,
   of the characters ``_rewrite_target`` lets in, only "%" and "?" (the path's end): x35's
   ``_escaped_path_percent``, its non-ASCII characters escaped once, after it. Readers of the
   stored (``%25``) target: the "target equals the rule path" check compares the annotation as
   written (template.go ``if path == location.Rewrite.Target``;
   ``test_target_equal_to_the_rule_path_is_compared_as_written``); X-Forwarded-Prefix asks only
   whether a target is set; a canary compares annotations; ``explain`` and the rewrite log show
   what the proxy core sends; IngressASGI applies no path rewrite (docs/asgi.md: the app gets
   the canonical path, ``root_path`` extended by the rule), so its scope's ``path`` and
   ``raw_path`` never see ``%25`` (``test_ingress_asgi_applies_no_path_rewrite``).
4. The request line sent upstream, and a URL target's Location, are valid HTTP for hostile
   paths (every ``%XX`` byte, "+", "//", "/.", "..", sub-delims) and targets (escapes,
   non-ASCII, "?", captures in path and arguments): ``test_what_goes_out_stays_valid_http``.
   The proxy answers 400 to the targets nginx would forward with a raw ``"`` or ``{`` (its own
   stricter parser), never a 5xx.

A trap, documented (README's rewrite-target row): ``rewrite-target: /%7Euser/$1`` goes up as
``/%257Euser/...``, as from nginx. ingress-nginx's own validator refuses "%" in rewrite-target
(parser/validators.go ``RegexPathWithCapture`` = ``^/?[`` + ``\\-\\.\\_\\~a-zA-Z0-9\\/:`` +
``\\/\\$]*$``), so with annotation validation on (ingress-nginx >= 1.9) such an Ingress is not
rewritten at all; only with it off does nginx double the escape. ingresslib keeps its
leniency (the "%" is accepted) and the nginx bytes; the README tells users to write the
character itself (``/~user/$1``, which both send as ``~``).

Found wrong, fixed (each test marked DEFECT failed before the fix):

5. ``_with_args`` read nginx's "a final '?' drops the request's arguments" on the target after
   its captures were copied: ``/search?$2`` with an empty ``$2`` left ``/search?``, taken for
   that final "?", and the request's ``q=1`` was dropped, where nginx sends ``/search?&q=1``
   (ngx_http_rewrite cuts the final "?" before compiling; regex_end_code appends "&" and the
   arguments to the target's argument part, empty or not); and ``/x??`` went up as ``/x?``
   where nginx writes no "?" for an empty argument part. Now decided on the target as
   written (``test_argument_part_is_nginx_s`` against test_x35_s35's port of nginx).

Noticed, left alone (named in the report): ``explain`` says nothing about a path rewrite (it
shows the upstream request line only with ``proxy-http-version: 1.0``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingresslib import IngressASGI, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options

from _asgi_call import asgi_exchange
from _proxy_harness import ProxyPair, Route, ingress_yaml, location, status_of
from test_h4_s35 import _upstream_line
from test_x35_s35 import _PIECES, _REGEXES, _assert_rewrite_is_nginx_s, _options

# --- 4. what goes out stays valid HTTP -------------------------------------------------------

#: A request line as RFC 9112 §3 allows it: no space, control or non-ASCII byte in the target.
_REQUEST_LINE = re.compile(rb"[A-Z]+ [\x21-\x7e]+ HTTP/1\.[01]")
#: A Location value the proxy may send: visible ASCII only.
_LOCATION = re.compile(rb"[\x21-\x7e]+")

_PATH_PIECES = ["/", "//", "/.", "/..", ".", "+", "a", "Z", "~", "&", "=", ";", "@", ":", "!",
                "'", "(", ")", "*", ",", "$", "%", "%2", "%zz", "é"] + [
    "%%%02X" % b for b in (0x00, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x23, 0x25, 0x26, 0x2B, 0x2F,
                           0x3F, 0x5C, 0x61, 0x7B, 0x7E, 0x7F, 0x80, 0xA9, 0xC3, 0xFF)]
_QUERY_PIECES = ["a", "=", "&", "+", "%20", "%2B", "%", "?", "/", "%C3%A9", "x"]
_TARGET_PIECES = ["/", "x", "$1", "$2", "$3", "?", "&", "=", "+", "%20", "%25", "%3F", "%7E",
                  "%C3%A9", "é", "€", "~", ":", "@", "!", "'", "(", ")", "*", ",", "-", ".", "_"]
_RULE_REGEXES = ["/(.*)", "/(.)(.*)", "/api(/|$)(.*)", "/([^/]*)/?(.*)", r"/(\w*)(\W?)(.*)",
                 r"/([\x80-\xff]+)(.*)", r"/(\S*)\s?(.*)", "(.*)"]


def _through_the_core(rule_regex: str, target: str, request_target: bytes
                      ) -> tuple[bytes | None, bytes]:
    """``(request line sent upstream or None, what the client got)`` for one request to a
    route whose rule path is ``rule_regex`` with ``use-regex`` and ``rewrite-target``."""
    route = Route("/", annotations={PREFIX + "use-regex": "true",
                                    PREFIX + "rewrite-target": target})
    pair = ProxyPair([route])
    assert route.match is not None
    route.match = replace(route.match, path=rule_regex)  # the FakeRouter routes by prefix
    out = pair.send(b"GET %s HTTP/1.1\r\nHost: example.test\r\n\r\n" % request_target)
    if not pair.upstreams:
        return None, out
    return bytes(pair.upstreams[0].raw).split(b"\r\n", 1)[0], out


@given(path=st.lists(st.sampled_from(_PATH_PIECES), max_size=8),
       query=st.none() | st.lists(st.sampled_from(_QUERY_PIECES), max_size=5).map("".join),
       target=st.lists(st.sampled_from(_TARGET_PIECES), min_size=1, max_size=8).map("".join),
       kind=st.sampled_from(["/", "https://new.test/", "http://new.test"]),
       rule_regex=st.sampled_from(_RULE_REGEXES))
def test_what_goes_out_stays_valid_http(path: list[str], query: str | None, target: str,
                                        kind: str, rule_regex: str) -> None:
    request_target = ("/" + "".join(path) + ("" if query is None else "?" + query)).encode()
    line, out = _through_the_core(rule_regex, kind + target, request_target)
    if line is not None:
        assert _REQUEST_LINE.fullmatch(line), (request_target, target, line)
        return
    status = status_of(out)
    assert status < 500, (request_target, target, out[:200])
    if 300 <= status < 400:
        found = location(out)
        assert found is not None and _LOCATION.fullmatch(found), (request_target, target, found)


def test_hostile_escapes_reach_the_upstream_escaped() -> None:
    # Examples of the property that are proxied. (A decoded control byte, DEL or a lone UTF-8
    # byte never gets here: the canonical path refuses them, 400.) The path as nginx's
    # NGX_ESCAPE_URI writes the rewritten $uri ("%" of the target doubled); the argument's
    # capture as NGX_ESCAPE_ARGS (nginx leaves '"' raw there: ingresslib its canonical %22).
    assert _through_the_core("/(.*)", "/%7E/$1?q=$1", b"/%22%25a&b+%C3%A9?x=%20")[0] == (
        b"GET /%257E/%22%25a&b+%C3%A9?q=%22%25a%26b%2B%C3%A9&x=%20 HTTP/1.1")
    # a URL target: NGX_ESCAPE_ARGS, then NGX_UNESCAPE_REDIRECT ("%26" and "%2B" decoded,
    # "%25" and "%C3" kept; a decoded "%3F" ends it)
    line, out = _through_the_core("/(.*)", "https://new.test/$1", b"/%22%25a&b+%C3%A9")
    assert line is None and location(out) == b'https://new.test/"%25a&b+%C3%A9'
    assert location(_through_the_core("/(.*)", "https://new.test/$1", b"//a%3Fb")[1]) == (
        b"https://new.test/a?b")


# --- 3. the stored target's other readers ---------------------------------------------------


def test_target_equal_to_the_rule_path_is_compared_as_written() -> None:
    # template.go buildProxyPass: "if path == location.Rewrite.Target { return defProxyPass }"
    # compares the annotation as written, not the %25 form the proxy sends.
    opts = parse_route_options({PREFIX + "rewrite-target": "/caf%C3%A9"}, "/caf%C3%A9",
                               ProxySettings())
    assert opts.rewrite_target is None and opts.warnings == ()
    other = parse_route_options({PREFIX + "rewrite-target": "/caf%C3%A9"}, "/cafe",
                                ProxySettings())
    assert other.rewrite_target == "/caf%25C3%25A9"


def test_ingress_asgi_applies_no_path_rewrite() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    ann = {PREFIX + "use-regex": "true", PREFIX + "rewrite-target": "/%7Euser/$1"}
    asgi = IngressASGI(parse_manifests(ingress_yaml("web", "example.test", ann, path="/a")),
                       backends={"default/web": app})
    messages = asgi_exchange(asgi, "example.test", "/a/b%20c")
    assert messages[0]["status"] == 200
    # the canonical path, decoded once as ASGI's ``path`` is; no "%25" anywhere
    assert seen[0]["path"] == "/a/b c" and seen[0]["raw_path"] == b"/a/b%20c"
    assert seen[0]["root_path"] == "/a"


# --- 5. the target's argument part after the captures (DEFECT, fixed) -----------------------

# nginx decides it on the target, before any capture is copied: ngx_http_rewrite drops a
# final "?" ("the last "?" drops the original arguments": ``add_args`` off), and
# ngx_http_script_regex_end_code then sets ``r->args`` to the target's argument part, with
# "&" and the request's arguments after it when ``add_args`` ("*e->pos++ = '&'", even after
# an empty part); ngx_http_proxy_create_request writes "?" only "if (r->args.len > 0)".


def test_an_empty_argument_capture_keeps_the_request_s_arguments() -> None:
    # DEFECT: "/search" (the "?" left by an empty $2 was read as the target's final "?",
    # and the request's "q=1" dropped).
    opts = _options("/find(/|$)(.*)", "/search?$2")
    assert opts.rewrite_uri("/find", "q=1") == "/search?&q=1"
    assert opts.rewrite_uri("/find/a", "q=1") == "/search?a&q=1"
    assert opts.rewrite_uri("/find", None) == "/search"
    assert _upstream_line("/find(/|$)(.*)", "/search?$2", b"/find?q=1") == (
        b"GET /search?&q=1 HTTP/1.1")


def test_a_final_question_mark_leaves_no_empty_argument_part() -> None:
    # DEFECT: "GET /x? HTTP/1.1": nginx drops the final "?", and the "?" before it starts an
    # empty argument part, which the request line does not write.
    assert _options("/a(.*)", "/x??").rewrite_uri("/a", "k=1") == "/x"
    assert _options("/a(.*)", "/x?$1?").rewrite_uri("/a", "k=1") == "/x"
    assert _options("/a(.*)", "/x?$1?").rewrite_uri("/ab", "k=1") == "/x?b"
    assert _upstream_line("/a(.*)", "/x??", b"/a?k=1") == b"GET /x HTTP/1.1"


@given(st.lists(st.sampled_from(_PIECES), max_size=10), st.sampled_from(_REGEXES),
       st.sampled_from(["/s?$2", "/s?$1", "/x??", "/x?$1?", "/x?$2&k=$1", "/r/$1?", "/r?",
                        "/r/$2"]),
       st.sampled_from([None, "", "x=1", "a=%20+b"]))
def test_argument_part_is_nginx_s(parts: list[str], rule_regex: str, target: str,
                                  query: str | None) -> None:
    _assert_rewrite_is_nginx_s(parts, rule_regex, target, query)
