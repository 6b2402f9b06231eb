"""Second review (R17h) of session 17's late changes: guards of what they must keep.

1. ``RouteOptionsSource._unrouted_answer``'s phase of every answer to a request no rule routes,
   against nginx.tmpl (kubernetes/ingress-nginx, rootfs/etc/nginx/template/nginx.tmpl): the
   server's ``location /`` answers (denied 503, allow/deny 403, permanent-redirect) come after
   its ``set $proxy_upstream_name``; the server-level app-root before any location's, even a
   denied one's; the www twin's server sets none.
2. ``ProxyServer.urls``: nothing before ``start``; a wildcard listener is the URL it always
   was (its address as bound); after ``shutdown`` the listener's address.
3. ``parse_int`` / ``parse_size`` against independent oracles (Go's Atoi, nginx's
   ngx_parse_offset), and the canary regex's ``{n,m}`` against Python's ``re`` on ASCII.
4. ConfigMap timeouts and counts at int64's maximum (the largest ``_config`` now takes) run
   through ``ProxyServer``: timers of ~9.2e18 s are armed (``call_at``/``asyncio.timeout``)
   without OverflowError, requests are served and the upstream connection is pooled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingresslib import Router, parse_manifests
from ingresslib._canary import LinearRegex, RegexError
from ingresslib._config import parse_config_data
from ingresslib._goparse import parse_int
from ingresslib.proxy._server import _socket_urls
from ingresslib.proxy._settings import parse_size
from tests._proxy_harness import ingress_yaml, status_of
from tests.test_review_proxy_s17 import P, _logged, _pair
from _budget import examples

INT64_MAX = (1 << 63) - 1

# 1. Phases of the unrouted answers --------------------------------------------------------------

_GET_X = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"


@pytest.mark.parametrize("annotations, status", [
    # nginx.tmpl, in the location: 'set $proxy_upstream_name {{ buildUpstreamName $location |
    # quote }};' ... '{{ else }} # Location denied. Reason: ... return 503; {{ end }}'
    # (configuration-snippet, which ingresslib cannot enforce; auth-url and auth-type: digest
    # until session 26)
    ({P + "configuration-snippet": "deny all;"}, 503),
    # the denied location's "return 503" (rewrite module) before lua_ingress's ssl-redirect
    # (rewrite_by_lua, the end of the rewrite phase)
    ({P + "configuration-snippet": "deny all;", P + "force-ssl-redirect": "true"}, 503),
    # '{{ if not (empty $location.Redirect.URL) }} return {{ $location.Redirect.Code }} {{
    # $location.Redirect.URL }};' in the same location, after the set
    ({P + "permanent-redirect": "https://e.test/z"}, 301),
    ({P + "temporal-redirect": "https://e.test/z"}, 302),
    # 'allow {{ $ip }}; ... deny all;': the access phase, after the rewrite phase's set
    ({P + "whitelist-source-range": "10.9.9.9/32"}, 403),
])
def test_server_location_answers_log_the_default_backend(annotations: dict[str, str],
                                                          status: int) -> None:
    p = _pair(ingress_yaml("a", "a.test", annotations, path="/foo"))
    assert status_of(p.send(_GET_X)) == status
    assert _logged(p) == [(status, "upstream-default-backend")]
    assert [r.phase for r in p.records] == ["location"]


def test_app_root_answers_before_a_denied_server_location() -> None:
    """The server-level "if ($uri = /) { return 302 $scheme://$http_host{{
    $location.Rewrite.AppRoot }}; }" runs in the server rewrite phase, before any location
    is found: a denied ``location /`` never gets to its 503, and the upstream is the
    server's ``set $proxy_upstream_name "-";``."""
    p = _pair(ingress_yaml("a", "a.test", {P + "configuration-snippet": "deny all;",
                                           P + "app-root": "/app"}, path="/foo"))
    out = p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 302 and b"location: http://a.test/app" in out.lower()
    assert _logged(p) == [(302, "-")]


def test_www_twin_of_a_denied_owner_still_redirects_unnamed() -> None:
    """The twin is a server of its own ("server_name {{ $redirect.From }}; ... return {{
    $all.Cfg.HTTPRedirectCode }} $redirect_to;"): the owner's denied location is not its."""
    p = _pair(ingress_yaml("a", "a.test", {P + "configuration-snippet": "deny all;",
                                           P + "from-to-www-redirect": "true"}))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: www.a.test\r\n\r\n")
    assert status_of(out) == 308
    assert _logged(p) == [(308, "")] and [r.phase for r in p.records] == ["head"]


# 2. ProxyServer.urls ----------------------------------------------------------------------------


class _Sock:
    def __init__(self, family: int, name: tuple[Any, ...]) -> None:
        self.family, self._name = family, name

    def getsockname(self) -> tuple[Any, ...]:
        return self._name


class _Srv:
    def __init__(self, *socks: _Sock) -> None:
        self.sockets = socks


@pytest.mark.parametrize("sock, url", [
    # What urls printed before (``scheme://host:port`` of the address as bound): a wildcard
    # stays the wildcard; no listener reads "0.0.0.0" as "every address" for the user.
    (_Sock(socket.AF_INET, ("0.0.0.0", 8080)), "http://0.0.0.0:8080"),
    (_Sock(socket.AF_INET6, ("::", 8080, 0, 0)), "http://[::]:8080"),
    (_Sock(socket.AF_INET6, ("::1", 8443, 0, 0)), "http://[::1]:8443"),
])
def test_a_one_socket_listener_is_the_url_it_was(sock: _Sock, url: str) -> None:
    host, port = sock.getsockname()[:2]
    old = f"http://{f'[{host}]' if ':' in host else host}:{port}"  # the former urls
    assert _socket_urls("http", _Srv(sock), (host, port)) == [url] == [old]


def test_a_closed_listener_is_its_address() -> None:
    """A closed asyncio.Server has no sockets: its address (``addresses``) is kept."""
    assert _socket_urls("https", _Srv(), ("127.0.0.1", 8443)) == ["https://127.0.0.1:8443"]


@pytest.mark.network
def test_urls_before_start_during_and_after_shutdown() -> None:
    from ingresslib.proxy import ProxyServer

    async def run() -> tuple[list[str], list[str], list[str], list[tuple[str, str, int]]]:
        server = ProxyServer(Router(parse_manifests(ingress_yaml("a", "a.test"))))
        before = server.urls
        await server.start(("127.0.0.1", 0), tls_listen=("127.0.0.1", 0))
        during = server.urls
        await server.shutdown(0)
        return before, during, server.urls, server.addresses

    before, during, after, addresses = asyncio.run(run())
    assert before == []
    assert during == [f"{s}://{h}:{p}" for s, h, p in addresses] == after
    assert [u.split(":")[0] for u in during] == ["http", "https"]


# 3. Integer parsers against independent oracles ---------------------------------------------------


def _go_atoi(s: str) -> int | None:
    """strconv.Atoi on a 64-bit platform: [+-]?[0-9]+ (ASCII), in int64."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or any(c not in "0123456789" for c in body):
        return None
    n = 0
    for c in body:  # (no int(): Python's own limits are what is under test)
        n = n * 10 + (ord(c) - 48)
        if n > 1 << 63:
            return None
    n = -n if s[0] == "-" else n
    return n if -(1 << 63) <= n <= INT64_MAX else None


_NUMERIC = st.builds(lambda sign, zeros, digits, tail: sign + "0" * zeros + digits + tail,
                     st.sampled_from(["", "+", "-", "+-", " "]), st.integers(0, 30),
                     st.text("0123456789", max_size=24), st.sampled_from(["", "k", "M", " ", "_1"]))
_JUNK = st.text(st.sampled_from(list("0123456789+-_ kmgKMG\t\n²٣")), max_size=24)
#: Around int64's edges, with a sign or leading zeros.
_EDGES = st.builds(lambda n, zeros, plus: ("+" if plus and n >= 0 else "") + (
    "-" if n < 0 else "") + "0" * zeros + str(abs(n)),
    st.one_of(st.integers(-(1 << 64), 1 << 64),
              st.integers(INT64_MAX - 1000, INT64_MAX + 1000),
              st.integers(-(1 << 63) - 1000, -(1 << 63) + 1000)),
    st.integers(0, 3), st.booleans())


@settings(max_examples=examples(), deadline=None)
@given(st.one_of(_NUMERIC, _JUNK, _EDGES))
@example("9223372036854775807")
@example("-9223372036854775808")
@example("9223372036854775808")
@example("1" + "0" * 18)
def test_parse_int_is_go_atoi(value: str) -> None:
    assert parse_int(value) == _go_atoi(value)


def test_parse_int_of_thousands_of_digits_is_out_of_range() -> None:
    assert parse_int("0" * 5000 + "7") == 7
    assert parse_int("-" + "9" * 5000) is None


def _nginx_size(s: str) -> int | None:
    """ngx_parse_offset: digits, an optional k/m/g (any case), at most 2^63-1 bytes."""
    s = s.strip()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(s[-1:].lower(), 1)
    digits = s[:-1] if scale != 1 else s
    if not digits or any(c not in "0123456789" for c in digits):
        return None
    n = 0
    for c in digits:
        n = n * 10 + (ord(c) - 48)
        if n > INT64_MAX:
            return None
    return n * scale if n <= INT64_MAX // scale else None


@settings(max_examples=examples(), deadline=None)
@given(st.one_of(_NUMERIC, _JUNK, _EDGES, _EDGES.map(lambda v: v + "k")))
@example("9223372036854775807")
@example("8589934591g")
@example("8589934592g")
def test_parse_size_is_nginx(value: str) -> None:
    try:
        got: int | None = parse_size(value)
    except ValueError:
        got = None
    assert got == _nginx_size(value)


_ATOM = st.sampled_from(["a", "b", "ab", "[ab]", "(a|b)", ".", "\\d", "x"])
_QUANT = st.one_of(st.sampled_from(["", "*", "+", "?"]),
                   st.builds(lambda lo, zeros: "{" + "0" * zeros + str(lo) + "}",
                             st.integers(0, 12), st.integers(0, 2)),
                   st.builds(lambda lo: "{%d,}" % lo, st.integers(0, 6)),
                   st.builds(lambda lo, extra: "{%d,%d}" % (lo, lo + extra),
                             st.integers(0, 6), st.integers(0, 6)))


@settings(max_examples=examples(), deadline=None)
@given(st.lists(st.tuples(_ATOM, _QUANT), min_size=1, max_size=4),
       st.booleans(), st.text("abx19{},", max_size=14))
def test_canary_repeats_match_as_re(parts: list[tuple[str, str]], anchored: bool,
                                    text: str) -> None:
    """ASCII ``{n}``, ``{n,}``, ``{n,m}`` (leading zeros too) as PCRE, whose syntax Python's
    ``re`` shares for them."""
    pattern = ("^" if anchored else "") + "".join(a + q for a, q in parts)
    try:
        ours = LinearRegex(pattern).search(text)
    except RegexError:
        pytest.fail(f"{pattern!r} refused")
    assert ours == (re.search(pattern, text) is not None), pattern


# 4. int64-max ConfigMap values through ProxyServer ------------------------------------------------

_HUGE = {k: str(INT64_MAX) for k in (
    "proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout",
    "proxy-next-upstream-timeout", "keep-alive", "upstream-keepalive-timeout",
    "client-header-timeout", "client-body-timeout", "keep-alive-requests",
    "upstream-keepalive-requests", "upstream-keepalive-connections",
    "proxy-next-upstream-tries", "hsts-max-age")}


#: nginx refuses a time past 2147483 s in these (nginx.tmpl writes them "<value>s"), and so does
#: the ConfigMap since session 23: the huge timers are given as keywords.
_NGINX_SECONDS = ("proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout",
                  "keep-alive", "upstream-keepalive-timeout", "client-header-timeout",
                  "client-body-timeout")


@pytest.mark.network
def test_int64_max_timeouts_arm_timers_and_serve() -> None:
    settings_ = dataclasses.replace(
        parse_config_data({k: v for k, v in _HUGE.items() if k not in _NGINX_SECONDS}).settings,
        **{k.replace("-", "_"): float(INT64_MAX) for k in _NGINX_SECONDS})
    assert settings_.upstream_keepalive_timeout == float(INT64_MAX)
    from ingresslib.proxy import ProxyServer

    writers: list[asyncio.StreamWriter] = []

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.readline():
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    async def run() -> tuple[list[bytes], int]:
        up = await asyncio.start_server(backend, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        manifests = ingress_yaml("a", "a.test") + f"""
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""
        server = ProxyServer(Router(parse_manifests(manifests)), settings_)
        await server.start(("127.0.0.1", 0))
        heads = []
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            for _ in range(2):  # keep-alive on both sides: the client's and the pool's timers
                w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                heads.append(await asyncio.wait_for(r.readuntil(b"\r\n\r\nok"), 10))
            idle = server.pool.idle_count()
            w.close()
            await w.wait_closed()
        finally:
            await server.shutdown(1)
            up.close()
            for bw in writers:
                bw.close()
                await bw.wait_closed()
            await up.wait_closed()
        return heads, idle

    heads, idle = asyncio.run(run())
    assert [h.split(b"\r\n", 1)[0] for h in heads] == [b"HTTP/1.1 200 OK"] * 2
    assert idle == 1
