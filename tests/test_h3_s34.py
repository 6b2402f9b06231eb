"""Session 34, h3: two reviewers' claims checked against the nginx / ingress-nginx source.

1. CORS and an empty ``Origin:`` (x24): "ingresslib adds no Access-Control-Allow-Origin but
   leaves the upstream's; nginx clears it". It does not hold. nginx.tmpl's CORS block sets its
   headers only ``if ($cors = "true")``. With ``cors-allow-origin: "*"``, template.go
   ``buildCorsOriginRegex`` writes "set $http_origin *; set $cors 'true';": every request
   (no Origin, an empty one, any other) gets ``Access-Control-Allow-Origin: *``, replacing the
   upstream's. With a list it writes "if ($http_origin ~* ((o1)|(o2))$ ) { set $cors 'true';
   }": an empty (or absent: the script engine reads it as "") ``$http_origin`` matches none
   of the alternatives (each is a quoted ``scheme://host`` or ``null``, never empty), so
   ``$cors`` stays unset, no ``more_set_headers`` of the block runs, and the upstream's header
   passes, as it does for an Origin not in the list. headers-more's clearing rule
   (ngx_http_headers_more_headers_out.c ``ngx_http_set_header_helper``: "if (value->len == 0
   || matched) { ... h[i].hash = 0; }") would apply only to a ``$cors`` set with an empty
   ``$http_origin``: the list's empty alternative (``"https://a.test,"`` ->
   ``((https://a\\.test)|)$``), which ingresslib skips (README: CORS, "an empty element").
   Nothing tested an empty Origin: the tests below pin it (core and IngressASGI). They passed
   before any change.

2. A ``rewrite-target`` URL and a capture holding ``%3F`` (x23): it holds. nginx's rewrite
   matches the decoded ``$uri`` (``/api/a%3Fb`` is ``/api/a?b``); for a redirect it copies a
   capture escaped with ``NGX_ESCAPE_ARGS`` when the request URI had a ``%`` or a ``+``
   (ngx_http_script.c ``ngx_http_script_regex_start_code``: "e->quote = code->redirect";
   ``ngx_http_script_copy_capture_code``: "if ((e->is_args || e->quote) &&
   (e->request->quoted_uri || e->request->plus_in_uri))"), then
   ``ngx_http_script_regex_end_code`` runs ``ngx_unescape_uri(..., NGX_UNESCAPE_REDIRECT)``
   over the whole Location: ngx_string.c decodes each ``%XX`` between ``%`` and DEL
   exclusive ("if (ch > '%' && ch < 0x7f)"), keeps the others as written (``%25``, ``%20``,
   ``%23``, ``%C3``), and stops at the first ``?``, a literal one or a decoded ``%3F``
   ("if (ch == '?') { *d++ = ch; goto done; }"), copying the rest as it is. The request's
   arguments follow after "?" unless the target itself holds a literal "?" (``code->args``,
   set by ngx_http_script_compile on a literal "?" only), after "&" then. ingresslib kept the
   canonical capture (``a%3Fb``): the client was sent to another URI than nginx sends it to.
   (``%2F`` never gets there: the canonical path refuses it, 400, SEMANTICS.)
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import h11
import pytest

from ingresslib import IngressASGI, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._actions import location_redirect
from ingresslib.proxy._annotations import PREFIX, RouteOptions, parse_route_options
from ingresslib.proxy._cors import Cors

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok
from test_cors_s25 import LIST, ON, asgi, headers_of, pair, request, status_of

# --- 1. CORS: an empty Origin ----------------------------------------------------------------

UPSTREAM_ACAO = b"https://upstream.test"


def _upstream_with_its_own_cors(req: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    return ok(b"x", b"Access-Control-Allow-Origin: " + UPSTREAM_ACAO + b"\r\n")


#: no Origin, ``Origin:`` with an empty value, an Origin the list does not hold.
ORIGINS = (None, "", "https://evil.test")


def test_cors_decision_for_an_empty_origin() -> None:
    listed = Cors(("https://a.test", "null"))
    assert listed.headers("") is None and listed.headers(None) is None
    any_origin = Cors(("*",))
    for origin in ORIGINS:
        h = any_origin.headers(origin)
        assert h is not None and h[0] == (b"Access-Control-Allow-Origin", b"*")


@pytest.mark.parametrize("origin", ORIGINS)
def test_core_list_without_a_matching_origin_passes_the_upstream_s_header(
        origin: str | None) -> None:
    p = pair(LIST, _upstream_with_its_own_cors)
    h = headers_of(p.send(request("GET", origin)))
    assert h[b"access-control-allow-origin"] == [UPSTREAM_ACAO]
    assert [n for n in h if n.startswith(b"access-control-")] == [b"access-control-allow-origin"]
    # $cors unset: no "trueoptions" either, the OPTIONS goes to the upstream (its 200)
    out = p.send(request("OPTIONS", origin))
    assert status_of(out) == 200
    assert headers_of(out)[b"access-control-allow-origin"] == [UPSTREAM_ACAO]


@pytest.mark.parametrize("origin", ORIGINS)
def test_core_any_origin_replaces_the_upstream_s_header(origin: str | None) -> None:
    p = pair(ON, _upstream_with_its_own_cors)
    h = headers_of(p.send(request("GET", origin)))
    assert h[b"access-control-allow-origin"] == [b"*"]
    assert b"access-control-allow-methods" in h
    assert status_of(p.send(request("OPTIONS", origin))) == 204


@pytest.mark.parametrize("origin", ORIGINS)
def test_asgi_empty_origin_as_the_core(origin: str | None) -> None:
    status, h = asgi(LIST, "GET", origin)
    assert status == 200 and h[b"access-control-allow-origin"] == [b"https://app.test"]
    assert b"access-control-allow-methods" not in h
    status, h = asgi(ON, "GET", origin)
    assert status == 200 and h[b"access-control-allow-origin"] == [b"*"]


# --- 2. a rewrite-target URL: NGX_UNESCAPE_REDIRECT ------------------------------------------

REGEX = "/api(/|$)(.*)"


def _options(target: str) -> RouteOptions:
    return parse_route_options({PREFIX + "use-regex": "true", PREFIX + "rewrite-target": target},
                               REGEX, ProxySettings())


def _location(target: str, path: str, query: str | None = None) -> bytes:
    answer = location_redirect(_options(target), path, query)
    assert answer is not None and answer[0] == 302
    return answer[1]


@pytest.mark.parametrize(("path", "query", "expected"), [
    # DEFECT: %3F decoded into "?", which ends the decoding; the arguments then follow after
    # "?" (the target has no "?" of its own: code->args is 0).
    ("/api/a%3Fb", None, b"https://new.test/a?b"),
    ("/api/a%3Fb", "x=1", b"https://new.test/a?b?x=1"),
    # after that "?" the capture stays as NGX_ESCAPE_ARGS wrote it
    ("/api/a%3Fb%26c%3Fd", None, b"https://new.test/a?b%26c%3Fd"),
    # DEFECT: escaped by NGX_ESCAPE_ARGS, decoded again ("&", "+", ";")
    ("/api/a%26b%2Bc%3Bd", None, b"https://new.test/a&b+c;d"),
    # DEFECT: characters NGX_ESCAPE_ARGS does not escape: as nginx's $uri holds them
    ("/api/a%22b%7Cc%21", None, b'https://new.test/a"b|c!'),
    # "%" itself, space, "#", non-ASCII: escaped, and NGX_UNESCAPE_REDIRECT keeps them
    ("/api/a%25b", None, b"https://new.test/a%25b"),
    ("/api/a%20b%23c", None, b"https://new.test/a%20b%23c"),
    ("/api/caf%C3%A9", "q=1", b"https://new.test/caf%C3%A9?q=1"),
    # no "%" nor "+" in the path: copied as it is
    ("/api/a&b=c", None, b"https://new.test/a&b=c"),
])
def test_url_target_location_is_nginx_s_unescaped_redirect(
        path: str, query: str | None, expected: bytes) -> None:
    assert _location("https://new.test/$2", path, query) == expected


def test_url_target_with_its_own_arguments() -> None:
    # the literal "?" of the target: code->args is 1, the request's arguments follow "&";
    # the path capture's %3F still ends the decoding before it
    assert _location("https://new.test/$2?q=$2", "/api/a%3Fb", "x=1") == (
        b"https://new.test/a?b?q=a%3Fb&x=1")
    # x17's case still holds: the path part's "+" decoded again, the argument's kept
    assert _location("https://new.test/$2?q=$2", "/api/c++", "x=1") == (
        b"https://new.test/c++?q=c%2B%2B&x=1")


def test_url_target_ending_in_a_question_mark() -> None:
    # ngx_http_rewrite cuts the final "?" from the replacement before it is compiled (no
    # arguments appended); a "?" decoded from the capture stays
    assert _location("https://new.test/$2?", "/api/a%3Fb", "x=1") == b"https://new.test/a?b"
    assert _location("https://new.test/$2?", "/api/ab", "x=1") == b"https://new.test/ab"


def test_url_target_s_own_escapes_are_unescaped_too() -> None:
    # NGX_UNESCAPE_REDIRECT runs over the whole Location, the target's text included
    assert _location("https://new.test/%7Eu/$2", "/api/x") == b"https://new.test/~u/x"
    assert _location("https://new.test/%25/$2", "/api/x") == b"https://new.test/%25/x"


def test_path_rewrite_is_unchanged() -> None:
    # not a redirect: no NGX_UNESCAPE_REDIRECT, the canonical capture goes up as before
    assert _options("/$2").rewrite_uri("/api/a%3Fb", "x=1") == "/a%3Fb?x=1"
    assert _options("/s?q=$2").rewrite_uri("/api/a%3Fb&c", None) == "/s?q=a%3Fb%26c"


def test_core_answers_nginx_s_location() -> None:
    # DEFECT: the client was sent to https://new.test/a%3Fb?x=1
    route = Route("/", annotations={PREFIX + "use-regex": "true",
                                    PREFIX + "rewrite-target": "https://new.test/$2"})
    p = ProxyPair([route])
    assert route.match is not None
    route.match = replace(route.match, path=REGEX)  # the FakeRouter routes by prefix
    out = p.send(b"GET /api/a%3Fb?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert status_of(out) == 302
    assert headers_of(out)[b"location"] == [b"https://new.test/a?b?x=1"]
    assert p.upstreams == []


async def _not_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("a redirect is answered by the location")


def test_asgi_answers_nginx_s_location() -> None:
    # DEFECT: the same through IngressASGI (redirect_for is shared). The rule path is a regex
    # that is also the literal prefix of the request, so that the Router (Prefix) routes it.
    ann = {PREFIX + "use-regex": "true", PREFIX + "rewrite-target": "https://new.test/$1"}
    app = IngressASGI(parse_manifests(ingress_yaml("web", "example.test", ann, path="/a(.*)")),
                      backends={"default/web": _not_called})
    sent: list[Any] = []

    async def send(m: Any) -> None:
        sent.append(m)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/a(.*)/x?y",
             "raw_path": b"/a(.*)/x%3Fy", "root_path": "", "query_string": b"q=1",
             "client": ("10.1.1.1", 5000), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"example.test")]}
    asyncio.run(app(scope, receive, send))
    # nginx: $uri "/a(.*)/x?y", $1 "(.*)/x?y", escaped "(.*)/x%3Fy", unescaped up to its "?"
    assert sent[0]["status"] == 302
    assert [v for n, v in sent[0]["headers"] if n.lower() == b"location"] == [
        b"https://new.test/(.*)/x?y?q=1"]
