"""Review of the headers the proxy writes to the upstream and back to the client (session 21,
Q21h), against ingress-nginx's nginx.tmpl (its ``proxy_set_header`` lines) and nginx's proxy
module (``ngx_http_proxy_headers[]``, ``ngx_http_proxy_hide_headers[]``).

- ``ignore-invalid-headers: "false"`` let every invalid name through but the ones with ``_``,
  which stayed dropped unless ``enable-underscores-in-headers``; nginx drops a ``_`` name only
  as an invalid one: "When the use of underscores is disabled, request header fields whose
  names contain underscores are marked as invalid and become subject to the
  ignore_invalid_headers directive" (ngx_http_core_module's documentation;
  ngx_http_process_request_headers: "if (r->invalid_header && cscf->ignore_invalid_headers)").
- Properties over random heads: no hop-by-hop header, and no header the client names in
  Connection, reaches the upstream or (from the upstream) the client; the headers this hop
  writes appear once each and an untrusted client cannot set them.
"""

from __future__ import annotations

from typing import Any

import pytest
from _budget import examples
from _proxy_harness import CLOCK, ProxyPair, Reply, Route, status_of
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._headers import HeaderKind, request_header_kind

from test_asgi_conformance import asgi_call

HOST = b"Host: example.test\r\n"
PEER = b"203.0.113.7"  # the harness's client address


def _upstream_head(pair: ProxyPair) -> list[tuple[bytes, bytes]]:
    """The (lower-cased name, value) lines of the first request the upstream received."""
    raw = bytes(pair.upstreams[0].raw)
    lines = raw[: raw.index(b"\r\n\r\n")].split(b"\r\n")[1:]
    return [(n.lower(), v.strip()) for n, _, v in (line.partition(b":") for line in lines)]


def _values(head: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in head if n == name]


# --- ignore-invalid-headers off lets `_` names through, as in nginx ---------------------------

UNDERSCORED = (b"X_Custom: 1\r\nX_Forwarded_For: 6.6.6.6\r\nX_Request_ID: spoofed\r\n"
               b"X.Dot: 2\r\n")


@pytest.mark.parametrize("s, passed", [
    (ProxySettings(), []),  # both on nginx's defaults: every odd name dropped
    (ProxySettings(ignore_invalid_headers=False), [b"x_custom", b"x.dot"]),
    (ProxySettings(enable_underscores_in_headers=True), [b"x_custom"]),
    (ProxySettings(ignore_invalid_headers=False, enable_underscores_in_headers=True),
     [b"x_custom", b"x.dot"]),
])
def test_underscore_names_follow_ignore_invalid_headers_as_in_nginx(
        s: ProxySettings, passed: list[bytes]) -> None:
    # Before: with ignore_invalid_headers=False alone, X_Custom was dropped (X.Dot passed).
    pair = ProxyPair(settings=s)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + HOST + UNDERSCORED + b"\r\n")) == 200
    head = _upstream_head(pair)
    names = [n for n, _ in head]
    assert [n for n in names if n in (b"x_custom", b"x.dot")] == passed
    if passed:
        assert _values(head, passed[0]) == [b"1"]
    # A `_` spelling of a header this hop writes never passes: CGI/WSGI backends read
    # X_Forwarded_For as HTTP_X_FORWARDED_FOR, the proxy's own.
    assert b"x_forwarded_for" not in names and b"x_request_id" not in names
    assert _values(head, b"x-forwarded-for") == [PEER]
    assert _values(head, b"x-request-id") == [b"0123456789abcdef0123456789abcdef"]


@pytest.mark.parametrize("name, named, s, kind", [
    (b"x_custom", [], ProxySettings(ignore_invalid_headers=False), HeaderKind.PASS),
    (b"x_custom", [b"x-custom"], ProxySettings(ignore_invalid_headers=False), HeaderKind.DROP),
    (b"x_real_ip", [], ProxySettings(ignore_invalid_headers=False), HeaderKind.DROP),
    (b"proxy_connection", [], ProxySettings(ignore_invalid_headers=False), HeaderKind.DROP),
    (b"x_client_ip", [], ProxySettings(ignore_invalid_headers=False,
                                       forwarded_for_header="X-Client-IP"), HeaderKind.DROP),
    (b"x_custom", [], ProxySettings(), HeaderKind.DROP),
])
def test_request_header_kind_of_underscore_names(name: bytes, named: list[bytes],
                                                 s: ProxySettings, kind: HeaderKind) -> None:
    ff_name = s.forwarded_for_header.lower().encode()
    assert request_header_kind(name, named, ff_name, s) is kind


@pytest.mark.asyncio
async def test_ingress_asgi_passes_underscore_names_the_same_way() -> None:
    # The adapter asks the same request_header_kind: its app sees what the backend sees.
    head = "GET /x HTTP/1.1\r\nHost: plain.test\r\nX_Custom: 1\r\nX_Real_IP: 6.6.6.6"
    seen = await asgi_call(head + "\r\nConnection: close",
                           settings=ProxySettings(ignore_invalid_headers=False))
    headers = seen.scopes[0]["headers"]
    assert (b"x_custom", b"1") in headers
    assert not [n for n, _ in headers if n == b"x_real_ip"]


# --- properties: hop-by-hop out, this hop's headers once and never the client's ---------------

_HOP = {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
        b"proxy-connection", b"proxy-authorization", b"proxy", b"expect"}
#: The headers this hop writes whatever the client sent (SEMANTICS §9).
_OWN = {b"x-forwarded-for", b"x-real-ip", b"x-forwarded-host", b"x-forwarded-port",
        b"x-forwarded-proto", b"x-forwarded-scheme", b"x-scheme"}


def _emptied(own: bytes, sent: list[tuple[bytes, bytes]], trusting: bool) -> bool:
    """Whether ``own`` is not sent at all: a trusted hop's empty X-Forwarded-Proto (for the
    three scheme headers) or X-Forwarded-Port is set, and empty (lua_ingress.lua), and
    ``proxy_set_header`` sends no empty value (session 24, tests/test_small_s24.py)."""
    src = b"x-forwarded-port" if own == b"x-forwarded-port" else b"x-forwarded-proto"
    if not trusting or own not in (src, b"x-forwarded-scheme", b"x-scheme"):
        return False
    # nginx (>= 1.23) joins a header's lines with ", " for $http_NAME
    values = [v.strip(b" \t") for n, v in sent if n.lower() == src]
    return bool(values) and b", ".join(values) == b""
_REQUEST_NAMES = [
    b"Connection", b"Keep-Alive", b"TE", b"Trailer", b"Proxy-Connection", b"Proxy-Authorization",
    b"Proxy", b"X-Forwarded-For", b"X-Real-IP", b"X-Forwarded-Host", b"X-Forwarded-Port",
    b"X-Forwarded-Proto", b"X-Forwarded-Scheme", b"X-Scheme", b"X-Original-Forwarded-For",
    b"X-Forwarded-Prefix", b"X-Original-URI", b"X-Request-ID", b"X-Client-IP", b"X-Foo",
    b"Accept", b"Cookie", b"X_Forwarded_For", b"X_Real_IP", b"X_Foo", b"X.Foo", b"Keep_Alive",
    b"x-forwarded_for", b"X_Client_IP"]
_TOKENS = [b"close", b"keep-alive", b"x-foo", b"X-Foo", b"x_foo", b"accept", b"cookie",
           b"x-forwarded-for", b"x-real-ip", b"x-request-id", b"host", b"te", b"x-client-ip",
           b"x-forwarded-host", b""]
_VALUES = [b"1.2.3.4", b"", b"abc", b"10.0.0.9, 1.2.3.4", b"https", b"evil.example"]
#: Ordinary names: they reach the upstream unless Connection names them.
_ORDINARY = {b"x-foo", b"accept", b"cookie"}


@settings(max_examples=examples(0.5), deadline=None)
@given(headers=st.lists(st.tuples(st.sampled_from(_REQUEST_NAMES), st.sampled_from(_VALUES)),
                        max_size=8),
       tokens=st.lists(st.sampled_from(_TOKENS), max_size=3),
       use_forwarded=st.booleans(), trusted=st.booleans(), full=st.booleans(),
       underscores=st.booleans(), ignore_invalid=st.booleans(),
       ff=st.sampled_from(["X-Forwarded-For", "X-Client-IP"]), generate=st.booleans(),
       websocket=st.booleans())
def test_property_what_reaches_the_upstream(
        headers: list[tuple[bytes, bytes]], tokens: list[bytes], use_forwarded: bool,
        trusted: bool, full: bool, underscores: bool, ignore_invalid: bool, ff: str,
        generate: bool, websocket: bool) -> None:
    s = ProxySettings(use_forwarded_headers=use_forwarded, compute_full_forwarded_for=full,
                      enable_underscores_in_headers=underscores,
                      ignore_invalid_headers=ignore_invalid, forwarded_for_header=ff,
                      generate_request_id=generate,
                      proxy_real_ip_cidr=("203.0.113.0/24",) if trusted else ())
    sent = [(n, v) for n, v in headers if n != b"Connection"]
    extra = b"".join(b"%s: %s\r\n" % h for h in sent)
    if websocket:
        tokens = [*tokens, b"upgrade"]
        extra += b"Upgrade: websocket\r\n"
    if tokens:
        extra += b"Connection: " + b", ".join(tokens) + b"\r\n"
    pair = ProxyPair(settings=s)
    assert status_of(pair.send(b"GET /a HTTP/1.1\r\n" + HOST + extra + b"\r\n")) == 200
    head = _upstream_head(pair)
    names = [n for n, _ in head]
    named = {t.strip().lower() for t in tokens}
    ff_name = ff.lower().encode()
    shadowed = _HOP | _OWN | named | {b"x-request-id", b"host", ff_name, b"content-length",
                                      b"x-original-uri", b"x-forwarded-prefix",
                                      b"x-original-forwarded-for"}
    for n in names:
        # RFC 9110 §7.6.1: hop-by-hop and Connection-named headers are this hop's only.
        assert n not in _HOP or (websocket and n in (b"upgrade", b"connection")), (n, head)
        assert n not in named or n in _OWN | {b"host", b"x-request-id", b"upgrade",
                                              b"connection"}, (n, head)
        if b"_" in n:
            assert underscores or not ignore_invalid, (n, head)
            assert n.replace(b"_", b"-") not in shadowed, (n, head)
    for own in _OWN:
        assert names.count(own) == (0 if _emptied(own, sent, trusted and use_forwarded)
                                    else 1), (own, head)
    # One X-Request-ID at most (generated, or the client's first when it is a token).
    assert names.count(b"x-request-id") == 1 if generate else names.count(b"x-request-id") <= 1
    if not (trusted and use_forwarded):
        # An untrusted client sets none of this hop's headers.
        got = {n: v for n, v in head if n in _OWN}
        assert got[b"x-real-ip"] == PEER and got[b"x-forwarded-host"] == b"example.test"
        assert got[b"x-forwarded-proto"] == got[b"x-forwarded-scheme"] == b"http"
        assert got[b"x-forwarded-port"] == b"80"
        if not (use_forwarded and full):
            assert got[b"x-forwarded-for"] == PEER
    # Ordinary headers pass, in order, with their values.
    want = [(n.lower(), v) for n, v in sent if n.lower() in _ORDINARY - named]
    assert [(n, v) for n, v in head if n in _ORDINARY] == want


_RESPONSE_NAMES = [b"Keep-Alive", b"TE", b"Trailer", b"Upgrade", b"Proxy-Connection",
                   b"Proxy-Authenticate", b"Server", b"Date", b"X-Accel-Redirect", b"X-Pad",
                   b"Set-Cookie", b"X-Foo", b"Strict-Transport-Security", b"Content-Type"]
_RESPONSE_TOKENS = [b"close", b"keep-alive", b"x-foo", b"set-cookie", b"content-type", b"date",
                    b"strict-transport-security", b"content-length"]
#: Hop-by-hop, and what nginx's proxy_hide_header hides by default (Server: ingress-nginx's
#: "more_clear_headers Server").
_RESPONSE_HIDDEN = {b"keep-alive", b"te", b"trailer", b"upgrade", b"proxy-connection",
                    b"proxy-authenticate", b"server", b"x-accel-redirect", b"x-pad"}


@settings(max_examples=examples(0.5), deadline=None)
@given(headers=st.lists(st.tuples(st.sampled_from(_RESPONSE_NAMES),
                                  st.sampled_from([b"a", b"b=1"])), max_size=6),
       tokens=st.lists(st.sampled_from(_RESPONSE_TOKENS), max_size=3), chunked=st.booleans(),
       http10=st.booleans(), head_request=st.booleans(), tls=st.booleans(),
       cookie=st.booleans(), status=st.sampled_from([200, 204, 304, 404]))
def test_property_what_reaches_the_client(
        headers: list[tuple[bytes, bytes]], tokens: list[bytes], chunked: bool, http10: bool,
        head_request: bool, tls: bool, cookie: bool, status: int) -> None:
    lines = b"".join(b"%s: %s\r\n" % h for h in headers)
    if tokens:
        lines += b"Connection: " + b", ".join(tokens) + b"\r\n"
    body = b"" if head_request else b"hello"

    def app(request: Any, received: bytes, upstream: Any) -> Reply:
        if status in (204, 304):
            return Reply(b"HTTP/1.1 %d X\r\n%s\r\n" % (status, lines))
        if chunked:
            return Reply(b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n%s\r\n%s" % (
                status, lines, b"5\r\nhello\r\n0\r\n\r\n" if body else b""))
        return Reply(b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n%s\r\n%s" % (status, lines, body))

    pair = ProxyPair(app=app, tls=tls, clock=lambda: CLOCK,
                     routes=[Route(set_cookie="C=1; Path=/" if cookie else None)])
    out = pair.send(b"%s / HTTP/1.%d\r\n%s\r\n" % (b"HEAD" if head_request else b"GET",
                                                  0 if http10 else 1, HOST))
    assert status_of(out) == status
    got = [(n.lower(), v.strip()) for n, _, v in (
        line.partition(b":") for line in out[: out.index(b"\r\n\r\n")].split(b"\r\n")[1:])]
    names = [n for n, _ in got]
    named = {t.lower() for t in tokens}
    for n, v in got:
        if n == b"connection":
            assert v == b"close", got  # only ours
        elif n == b"transfer-encoding":
            # Ours: chunked, to an HTTP/1.1 client, for a response with no length.
            assert v == b"chunked" and not http10 and b"content-length" not in names, got
        else:
            assert n not in _RESPONSE_HIDDEN, (n, got)
            # A header the upstream named in Connection is gone; the proxy's own stay.
            assert n not in named or n in (b"date", b"strict-transport-security",
                                           b"set-cookie"), (n, got)
    assert names.count(b"date") == 1, got  # ours replaces the upstream's
    assert (b"strict-transport-security" in names) == (
        tls or (b"strict-transport-security" not in named
                and any(n == b"Strict-Transport-Security" for n, _ in headers))), got
    if status == 204:
        assert b"content-length" not in names and b"transfer-encoding" not in names, got
    # The upstream's cookies keep their order, and the affinity cookie comes after them.
    upstream_cookies = [] if b"set-cookie" in named else [
        v for n, v in headers if n == b"Set-Cookie"]
    assert _values(got, b"set-cookie") == upstream_cookies + (
        [b"C=1; Path=/" + (b"; Secure" if tls else b"")] if cookie else [])
