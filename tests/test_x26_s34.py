"""Session 34, x26: a second engineer's review of h3 (the Location of a rewrite-target URL).

h3 builds the Location of ``rewrite-target: https://...`` as nginx's ``rewrite`` does for a
redirect. Checked against the nginx source:

- ngx_http_script.c ``ngx_http_script_regex_start_code``: "e->quote = code->redirect";
  ``ngx_http_script_copy_capture_code``: a capture is escaped with NGX_ESCAPE_ARGS "if
  ((e->is_args || e->quote) && (e->request->quoted_uri || e->request->plus_in_uri))", else
  copied; "if (n < r->ncaptures)": a group that took no part copies nothing;
- ``ngx_http_script_regex_end_code``: "if (code->redirect) { ... ngx_unescape_uri(&dst, &src,
  e->pos - e->buf.data, NGX_UNESCAPE_REDIRECT); if (src < e->pos) { dst = ngx_movemem(dst, src,
  e->pos - src); } ... if (code->add_args && r->args.len) { *e->pos++ = (u_char) (code->args ?
  '&' : '?'); ...": the rest after the stop copied as it is, then the arguments;
- ngx_string.c ``ngx_unescape_uri``: NGX_UNESCAPE_REDIRECT decodes a ``%XX`` only "if (ch >
  '%' && ch < 0x7f)", else writes "'%'; *(s - 2); *(s - 1)" (the escape as written), and
  stops at a "?", literal or decoded ("goto done");
- ngx_http_rewrite_module.c ``ngx_http_rewrite``: "the last "?" drops the original
  arguments" (cut before compiling, add_args 0); "sc.compile_args = !regex->redirect" and
  "regex->args = sc.args"; ngx_http_script_compile sets "sc->args = 1" on a literal "?" of
  the replacement only (a "%3F" of the target is no "?" there).

Found right, pinned below (each test passed on h3's code; none needed a fix):

1. A byte-level port of those functions (``_nginx_location``) agrees with ingresslib on
   generated canonical paths, queries and targets (captures of ``(.*)``, where the canonical
   capture decodes to nginx's ``$uri`` capture).
2. No Location holds CR, LF, NUL, DEL, a space or a byte over 0x7E: NGX_ESCAPE_ARGS escapes
   them and NGX_UNESCAPE_REDIRECT decodes only bytes between "%" and DEL (``%0D%0A`` stays
   escaped even if it got there; the canonical path answers it 400 first, SEMANTICS §5).
3. A target with no ``$n`` is unescaped too (``%7E``, a ``%3F`` of its own then appends the
   arguments after "?": ``static??q=1``, as nginx).
4. HEAD gets the 302 with the Location and no body; ``permanent-redirect``,
   ``temporal-redirect`` and ``app-root`` keep their URL as written (nginx's ``return``
   unescapes nothing); IngressASGI answers the same Location as the core.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ingresslib import BadRequestError, IngressASGI, Router, parse_manifests
from ingresslib._normalize import canonical_path
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._actions import location_redirect
from ingresslib.proxy._annotations import PREFIX, RouteOptions, parse_route_options

from _asgi_call import asgi_exchange
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml, location, status_of

REGEX = "/api(/|$)(.*)"

# --- nginx, byte for byte ----------------------------------------------------------------

#: ngx_escape_uri's ``args`` table: '" ", "#", "%", "&", "+", ";", "?"', %00-%1F, %7F-%FF.
_ESCAPE_ARGS = frozenset(b" #%&+;?") | frozenset(range(0x20)) | frozenset(range(0x7F, 0x100))


def _ngx_escape_args(data: bytes) -> bytes:
    return b"".join(b"%%%02X" % c if c in _ESCAPE_ARGS else bytes([c]) for c in data)


def _hex(c: int) -> int | None:
    ch = chr(c)
    return int(ch, 16) if ch in "0123456789abcdefABCDEF" else None


def _ngx_unescape_redirect(src: bytes) -> bytes:
    """ngx_unescape_uri(..., NGX_UNESCAPE_REDIRECT), its states as written, then what
    regex_end_code's ngx_movemem keeps after the stop."""
    out = bytearray()
    state = decoded = 0
    for i, ch in enumerate(src):
        if state == 0:  # sw_usual
            if ch == 0x3F:
                return bytes(out) + src[i:]
            if ch == 0x25:
                state = 1
            else:
                out.append(ch)
        elif state == 1:  # sw_quoted
            h = _hex(ch)
            if h is None:
                state = 0
                out.append(ch)
            else:
                decoded, state = h, 2
        else:  # sw_quoted_second
            state = 0
            h = _hex(ch)
            if h is None:
                continue  # "the invalid quoted character": nothing written
            c = decoded * 16 + h
            if c == 0x3F:
                return bytes(out) + b"?" + src[i + 1:]
            out += bytes([c]) if 0x25 < c < 0x7F else src[i - 2:i + 1]
    return bytes(out)


def _ngx_quoted(uri: str) -> bool:
    """``r->quoted_uri || r->plus_in_uri``: a "%" or a "+" in the path, before "?" or "#"
    (ngx_http_parse_request_line's path states, then ngx_http_parse_complex_uri's pass over
    the whole path when "//" or "/." ended them; ported state by state in test_x35_s35)."""
    path = re.split(r"[?#]", uri, maxsplit=1)[0]
    return "%" in path or "+" in path


def _kept_escaped(data: bytes) -> bytes:
    return b"".join(b"%%%02X" % c if c <= 0x20 or c == 0x25 or c >= 0x7F else bytes([c])
                    for c in data)


def _nginx_location(target: str, path: str, query: str | None) -> bytes | None:
    """What nginx's ``rewrite "(?i)/api(/|$)(.*)" <target> break;`` sends as Location for
    the request whose canonical path is ``path`` (``$uri``: its bytes decoded)."""
    uri = unquote_to_bytes(path)
    m = re.match(rb"(?i)/api(/|$)(.*)", uri, re.S)
    if m is None:
        return None
    add_args = not target.endswith("?")
    source = target if add_args else target[:-1]
    quoted = _ngx_quoted(path)  # the canonical path stands in for the request line
    buf = b""
    for piece in re.split(r"(\$[1-9])", source):
        if re.fullmatch(r"\$[1-9]", piece):
            n = int(piece[1])
            cap = (m.group(n) or b"") if n <= 2 else b""
            # Not quoted, nginx copies the bytes raw; ingresslib keeps what a Location cannot
            # hold, and "%", escaped (session 35 h4, ``_redirect_capture``).
            buf += _ngx_escape_args(cap) if quoted else _kept_escaped(cap)
        else:
            buf += piece.encode("ascii")
    buf = _ngx_unescape_redirect(buf)
    if add_args and query:
        buf += (b"&" if "?" in source else b"?") + query.encode("ascii")
    return buf


# --- ingresslib --------------------------------------------------------------------------


def _options(target: str) -> RouteOptions:
    return parse_route_options({PREFIX + "use-regex": "true", PREFIX + "rewrite-target": target},
                               REGEX, ProxySettings())


def _location(target: str, path: str, query: str | None = None) -> bytes | None:
    answer = location_redirect(_options(target), path, query)
    if answer is None:
        return None
    status, value = answer
    assert status == 302
    return value


TARGETS = (
    "https://new.test/$2",
    "https://new.test/$2?q=$2",
    "https://new.test/$2?",
    "https://new.test/x%3F$2",
    "http://new.test/%7Eu/$1$2/%25%20?a=$2&b",
    "https://new.test/$2%3Fa=$2",
    "https://new.test/$3/$2",
    "https://new.test/static",
)

#: Characters of a path: pchar as written, and characters a client must escape (the controls
#: the canonical path refuses: ``test_control_escapes_stay_escaped``).
_PIECES = st.one_of(
    st.sampled_from("aZ09-._~!$&'()*+,;=:@/"),
    st.sampled_from(' "#%<>?[\\]^`{|}é€').map(
        lambda c: quote(c.encode("utf-8"), safe="")),
)


@given(st.sampled_from(TARGETS), st.lists(_PIECES, max_size=12).map("".join),
       st.sampled_from((None, "", "x=1", "a=%20&b")))
def test_location_is_nginx_s(target: str, rest: str, query: str | None) -> None:
    try:
        path = canonical_path("/api/" + rest)
    except BadRequestError:
        path = ""
    assume(path)
    got = _location(target, path, query)
    assert got == _nginx_location(target, path, query)
    assert got is None or re.fullmatch(rb"[\x21-\x7e]+", got), got  # None: "/api/.." is "/"


@pytest.mark.parametrize(("path", "expected"), [
    # not a canonical path (refused 400 before routing), yet never a header break
    # (session 35 h4: the regex runs on the decoded path, where "." stops at the LF, as
    # PCRE's does without DOTALL)
    ("/api/a%0D%0Ab", b"https://new.test/a%0D"),
    ("/api/a%00%7F%20b", b"https://new.test/a%00%7F%20b"),
])
def test_control_escapes_stay_escaped(path: str, expected: bytes) -> None:
    assert _location("https://new.test/$2", path) == expected


def test_core_refuses_a_control_escape_before_any_location() -> None:
    p = _pair({PREFIX + "use-regex": "true", PREFIX + "rewrite-target": "https://new.test/$1"})
    out = p.send(b"GET /a(.*)/x%0D%0ASet-Cookie:%20a=b HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert status_of(out) == 400 and location(out) is None
    assert b"set-cookie" not in out.lower()


def test_target_without_captures() -> None:
    assert _location("https://new.test/st%61tic", "/api/a%3Fb", "q=1") == (
        b"https://new.test/static?q=1")
    # its own %3F ends the unescaping; code->args is 0 (no literal "?"): "?" again, as nginx
    assert _location("https://new.test/static%3F", "/api/x", "q=1") == (
        b"https://new.test/static??q=1")


# --- through the proxy core and IngressASGI ----------------------------------------------

#: A rule path that is a regex and also the literal prefix of the requests below, so that the
#: Router (Prefix) routes them and the rewrite regex matches them.
RULE = "/a(.*)"


def _pair(annotations: dict[str, str]) -> ProxyPair:
    docs = ingress_yaml("web", "example.test", annotations, path=RULE) + WEB_SERVICE_YAML
    return ProxyPair(router=Router(parse_manifests(docs)))


def _core(annotations: dict[str, str], method: str, target: str) -> bytes:
    return _pair(annotations).send(
        f"{method} {target} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode())


async def _not_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("a redirect is answered before the backend")


def _asgi(annotations: dict[str, str], method: str, target: str) -> tuple[int, bytes | None]:
    app = IngressASGI(parse_manifests(ingress_yaml("web", "example.test", annotations,
                                                   path=RULE)),
                      backends={"default/web": _not_called})
    path, _, query = target.partition("?")
    first = asgi_exchange(app, "example.test", path, query.encode(), method=method)[0]
    found = [bytes(v) for n, v in first["headers"] if bytes(n).lower() == b"location"]
    return first["status"], (found[0] if found else None)


URL_TARGET = {PREFIX + "use-regex": "true", PREFIX + "rewrite-target": "https://new.test/$1"}


@pytest.mark.parametrize("target", [
    "/a(.*)/x%3Fy?q=1", "/a(.*)/c++?q=1", "/a(.*)/%22%7C%23%25%20?x", "/a(.*)/caf%C3%A9",
    "/a(.*)/p%26q%3Bq",
])
def test_core_and_asgi_send_the_same_location(target: str) -> None:
    out = _core(URL_TARGET, "GET", target)
    assert status_of(out) == 302
    assert _asgi(URL_TARGET, "GET", target) == (302, location(out))


def test_head_gets_the_redirect_without_a_body() -> None:
    out = _core(URL_TARGET, "HEAD", "/a(.*)/x%3Fy?q=1")
    assert status_of(out) == 302
    assert location(out) == b"https://new.test/(.*)/x?y?q=1"
    assert out.endswith(b"\r\n\r\n")  # the head alone
    assert _asgi(URL_TARGET, "HEAD", "/a(.*)/x%3Fy?q=1") == (302, location(out))


@pytest.mark.parametrize(("annotations", "target", "status", "expected"), [
    ({PREFIX + "permanent-redirect": "https://p.test/a%3Fb%26c%7E"}, "/a(.*)/x%3Fy?q=1",
     301, b"https://p.test/a%3Fb%26c%7E"),
    ({PREFIX + "temporal-redirect": "https://t.test/a%3Fb%26c%7E"}, "/a(.*)/x%3Fy?q=1",
     302, b"https://t.test/a%3Fb%26c%7E"),
])
def test_return_redirects_keep_their_url_as_written(
        annotations: dict[str, str], target: str, status: int, expected: bytes) -> None:
    out = _core(annotations, "GET", target)
    assert (status_of(out), location(out)) == (status, expected)
    assert _asgi(annotations, "GET", target) == (status, expected)


def test_app_root_keeps_its_path_as_written() -> None:
    # app-root's own rule: it answers "/" only, so the Ingress routes "/"
    docs = ingress_yaml("web", "example.test", {PREFIX + "app-root": "/app%7E%3Fx"})
    p = ProxyPair(router=Router(parse_manifests(docs + WEB_SERVICE_YAML)))
    out = p.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert (status_of(out), location(out)) == (302, b"http://example.test/app%7E%3Fx")
