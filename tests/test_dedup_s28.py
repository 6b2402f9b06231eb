"""Session 28, one piece of code where the library wrote the same logic twice.

- ``_goparse.normalize_string`` (parser/main.go ``normalizeString``) and ``trim_space``
  (``strings.TrimSpace``) serve the balancer, canary, CORS and external-auth annotations
  (``_cors`` had its own copy with a shorter white-space set; ``_extauth`` / ``_globalauth``
  used ``str.strip()``, which also trims U+001C..U+001F and, on the whole value, a line
  break that Go keeps).
- ``auth-url`` and friends: read as authreq/main.go reads them (``GetStringAnnotation``, then
  ``url.Parse`` / ``ValidHeader``): a trailing line break (a YAML ``|`` block scalar) or a
  U+001C..U+001F at an end is kept, so the value is refused as ingress-nginx refuses it.
- ``_extauth._never_from_auth`` serves ``auth-response-headers`` and
  ``global-auth-response-headers``; ``_asgi_extauth._connect`` the ASGI subrequest and the
  auth-keepalive pool; ``_canary._Compiler.chain`` both fragment concatenations.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ingresslib._models import GO_SPACE
from ingresslib.proxy import ProxySettings
from ingresslib.proxy import _globalauth
from ingresslib.proxy._annotations import parse_route_options
from ingresslib.proxy._extauth import parse_ext_auth

from _budget import examples
from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of
from test_asgi_extauth_s26 import AuthService, call, manifests, run

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
GET = b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n"


def _opts(annotations: dict[str, str]) -> Any:
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/site")


def _parse(annotations: dict[str, str]) -> tuple[Any, str | None, list[str]]:
    warned: list[str] = []
    ext, denied = parse_ext_auth(annotations, P, lambda k, m: warned.append(f"{k}: {m}"))
    return ext, denied, warned


def _pair(auth_url: str) -> ProxyPair:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return ok(b"backend")
    return ProxyPair([Route(annotations={P + "auth-url": auth_url}, endpoints=[WEB])], app=app)


# ------------------------------------------------------------------ the Go string readers
def test_trim_space_is_go_trimspace_not_str_strip() -> None:
    from ingresslib._goparse import trim_space

    # unicode.IsSpace: U+0085, U+00A0, U+3000 are white space; U+001C..U+001F are not (str
    # treats them as white space).
    assert trim_space("\u3000\x85\xa0 a\t\n") == "a"
    for c in "\x1c\x1d\x1e\x1f":
        assert trim_space(c + "a" + c) == c + "a" + c
        assert (c + "a").strip() == "a"  # what the old readers did


def test_normalize_string_trims_each_line_and_keeps_the_breaks() -> None:
    from ingresslib._goparse import normalize_string

    assert normalize_string(" ewma ") == "ewma"
    assert normalize_string("ewma\n") == "ewma\n"
    assert normalize_string(" a \n\u3000b\x1c ") == "a\nb\x1c"


@hsettings(max_examples=examples(0.2))
@given(st.text(alphabet=st.sampled_from(list(GO_SPACE) + ["a", "\x1c", ","]), max_size=12))
def test_normalize_string_is_trim_space_per_line(text: str) -> None:
    from ingresslib._goparse import normalize_string, trim_space

    assert normalize_string(text).split("\n") == [trim_space(x) for x in text.split("\n")]


# ------------------------------------------------------------------ auth-url and friends
def test_auth_url_with_a_trailing_line_break_denies_the_location() -> None:
    # authreq/main.go: GetStringAnnotation keeps the block scalar's last line break, url.Parse
    # refuses it ("invalid control character in URL"): LocationDenied, 503. Before: stripped,
    # the auth service asked and the request served.
    for bad in (URL + "\n", "\x1c" + URL, URL + "\x1f"):
        ext, denied, warned = _parse({P + "auth-url": bad})
        assert ext is None and denied is not None, repr(bad)
        assert any("503" in w for w in warned)
    assert "line break" in str(_parse({P + "auth-url": URL + "\n"})[1])
    opts = _opts({P + "auth-url": URL + "\n"})
    assert opts.ext_auth is None
    assert opts.access is not None and opts.access.denied
    assert status_of(_pair(URL + "\n").send(GET)) == 503
    # What Go's TrimSpace trims is trimmed still.
    for good in (" " + URL + " ", "\u3000" + URL + "\xa0", URL + "\t"):
        ext, denied, _ = _parse({P + "auth-url": good})
        assert ext is not None and ext.url == URL, repr(good)
    assert status_of(_pair(" " + URL + " ").send(GET)) == 200


def test_auth_url_with_a_line_break_is_503_in_ingressasgi_too() -> None:
    async def go() -> tuple[Any, AuthService]:
        async with AuthService() as auth:
            text = manifests(auth.port)
            url = f"http://127.0.0.1:{auth.port}/oauth2/auth?x=1"
            text = text.replace(f"'{url}'", f'"{url}\\n"', 1)  # YAML: "...\n"
            assert f'"{url}\\n"' in text
            return await call(text, [], auth=auth), auth
    seen, auth = run(go())
    assert seen.status == 503 and not seen.scopes and not auth.heads


def test_other_auth_values_keep_what_go_keeps() -> None:
    base = {P + "auth-url": URL}
    # auth-response-headers: "header = strings.TrimSpace(header)", then ValidHeader.
    ext, denied, _ = _parse({**base, P + "auth-response-headers": "X-User\x1c"})
    assert ext is None and denied is not None
    ext, denied, _ = _parse({**base, P + "auth-response-headers": "\u3000X-User ,X-Email\n"})
    assert ext is not None and ext.response_headers == ("X-User", "X-Email")
    # auth-signin: GetStringAnnotation; invalid: warned, not set.
    for bad in ("https://login.test/\n", "\x1fhttps://login.test/"):
        ext, denied, warned = _parse({**base, P + "auth-signin": bad})
        assert ext is not None and ext.signin is None, repr(bad)
        assert any("auth-signin" in w for w in warned)
    ext, _, _ = _parse({**base, P + "auth-signin": " https://login.test/ "})
    assert ext is not None and ext.signin == "https://login.test/"
    # auth-signin-redirect-param and auth-request-redirect: GetStringAnnotation.
    ext, _, warned = _parse({**base, P + "auth-signin-redirect-param": "\x1cnext"})
    assert ext is not None and ext.signin_param == "rd" and warned
    ext, _, warned = _parse({**base, P + "auth-request-redirect": "/x\n"})
    assert ext is not None and ext.request_redirect is None and warned
    ext, _, warned = _parse({**base, P + "auth-request-redirect": "\u3000/x "})
    assert ext is not None and ext.request_redirect == b"/x" and not warned


def test_global_auth_values_keep_what_go_keeps() -> None:
    with pytest.raises(ValueError, match="line break"):
        _globalauth.check_url(URL + "\n")
    with pytest.raises(ValueError):
        _globalauth.check_url("\x1c" + URL)
    assert _globalauth.check_url(" " + URL) == URL
    with pytest.raises(ValueError):
        _globalauth.check_response_headers("X-A,\x1cX-B")
    assert _globalauth.check_response_headers("\u3000X-A , ,X-B\xa0") == ("X-A", "X-B")
    with pytest.raises(ValueError):
        _globalauth.check_request_redirect("\x1f/x")
    assert _globalauth.check_request_redirect("\xa0/x ") == "/x"
    with pytest.raises(ValueError):
        _globalauth.check_signin_param("\x1cnext")
    assert _globalauth.check_signin_param("\u3000next ") == "next"


def test_never_from_auth_serves_annotation_and_configmap() -> None:
    from ingresslib.proxy._extauth import _never_from_auth

    for name in ("Content-Length", "content_length", "Transfer_Encoding", "Connection"):
        assert _never_from_auth(name), name
        with pytest.raises(ValueError, match="hop-by-hop"):
            _globalauth.check_response_headers("X-A, " + name)
        ext, denied, warned = _parse({P + "auth-url": URL, P + "auth-response-headers":
                                      "X-A, " + name})
        assert ext is not None and ext.response_headers == ("X-A",)
        assert any("hop-by-hop" in w for w in warned)
    assert not _never_from_auth("X-User") and not _never_from_auth("x_auth_request_email")


# ------------------------------------------------------------------ mirror-*
def _mirror(annotations: dict[str, str]) -> tuple[Any, list[str]]:
    from ingresslib.proxy._mirror import parse_mirror

    warned: list[str] = []
    m = parse_mirror({P + "mirror-target": "http://m.test/x", **annotations}, P,
                     lambda k, msg: warned.append(msg))
    return m, warned


def test_mirror_request_body_off_is_off_only_as_go_reads_it() -> None:
    # mirror/main.go: "if err != nil || config.RequestBody != "off" { ... = "on" }" on
    # GetStringAnnotation's value; a value its validator (^(on|off)$ without spaces) refuses
    # is an error: "on". Before: warned "using the default on" and then mirrored no body.
    for raw in ("off\n", "\x1coff", "\u3000off", "o ff", "x"):
        m, warned = _mirror({P + "mirror-request-body": raw})
        assert m.request_body is True, repr(raw)
        assert bool(warned) == (raw != "o ff"), repr(raw)
    for raw in ("off", " off ", "off  "):
        m, warned = _mirror({P + "mirror-request-body": raw})
        assert m.request_body is False and not warned, repr(raw)

