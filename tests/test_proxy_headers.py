"""The header policy helpers: raw head checks, Host values, trusted hops."""

from __future__ import annotations

import pytest

from ingresslib._route_state import http_header
from ingresslib.proxy import ProxySettings, RemoteProxyError
from ingresslib.proxy._headers import (
    HEADER_NAME_CHARS,
    HeaderKind,
    RequestIds,
    TrustPolicy,
    check_host,
    check_partial_head,
    check_raw_head,
    client_ip_from_chain,
    first_forwarded_host,
    local_body,
    redirect_scheme,
    request_header_kind,
    special_request_names,
)

from _proxy_harness import ProxyPair, Reply, Route, status_of

S = ProxySettings()


@pytest.mark.parametrize("host", [b"", b"example.test", b"example.test:8080", b"[::1]:80",
                                  b"127.0.0.1", b"xn--caf-dma.example", b"a_b.example"])
def test_good_hosts(host: bytes) -> None:
    check_host(host)


@pytest.mark.parametrize("host", [b"a b", b"a/b", b"u@h", b"h:", b"h:99999", b"h:0", b"h:1:2",
                                  b"[::1", b"h\\x", b"h?x", b"h#x"])
def test_bad_hosts(host: bytes) -> None:
    with pytest.raises(RemoteProxyError) as e:
        check_host(host)
    assert e.value.status_hint == 400


def test_raw_head_accepts_a_normal_head() -> None:
    check_raw_head(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", S)


@pytest.mark.parametrize("head,status", [
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\ncontent-length: 1\r\nContent-Length: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n", 400),
    (b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 8200 + b"\r\n\r\n", 431),
])
def test_raw_head_rejections(head: bytes, status: int) -> None:
    with pytest.raises(RemoteProxyError) as e:
        check_raw_head(head, S)
    assert e.value.status_hint == status


def test_partial_head_limits() -> None:
    check_partial_head(b"GET / HTTP/1.1\r\nHost: a", S)
    with pytest.raises(RemoteProxyError):
        check_partial_head(b"G" * 9000, S)


def test_client_ip_from_chain() -> None:
    policy = TrustPolicy(["10.0.0.0/8", "2001:db8::/32"])
    assert client_ip_from_chain("1.1.1.1, 10.0.0.2", "10.0.0.1", policy) == "1.1.1.1"
    assert client_ip_from_chain("1.1.1.1, 2.2.2.2", "10.0.0.1", policy) == "2.2.2.2"
    assert client_ip_from_chain("10.0.0.3, 10.0.0.2", "10.0.0.1", policy) == "10.0.0.3"
    assert client_ip_from_chain("1.1.1.1, junk, 10.0.0.2", "10.0.0.1", policy) == "10.0.0.2"
    assert client_ip_from_chain("", "10.0.0.1", policy) == "10.0.0.1"
    assert policy.trusted("2001:db8::1") and not policy.trusted("1.1.1.1")
    assert not policy.trusted("garbage") and not TrustPolicy([]).trusted("10.0.0.1")


# ---------------------------------------------------------------------- through the core
# The policy above as the sans-IO core applies it (tests/_proxy_harness.py: no sockets).
HOST = b"Host: example.test\r\n"
GET = b"GET /a HTTP/1.1\r\n" + HOST + b"\r\n"


def _response_with(extra: bytes) -> bytes:
    def app(request: object, body: bytes, up: object) -> Reply:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + extra + b"\r\nok")
    return ProxyPair(app=app).send(GET)


def _names(head: bytes) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]]


@pytest.mark.parametrize("name", [b"X-Accel-Redirect", b"X-Accel-Expires", b"X-Accel-Limit-Rate",
                                  b"X-Accel-Buffering", b"X-Accel-Charset", b"X-Pad", b"Server"])
def test_upstream_headers_nginx_hides_are_not_forwarded(name: bytes) -> None:
    # nginx ngx_http_proxy_module.c, ngx_http_proxy_hide_headers[]: "Date", "Server", "X-Pad",
    # "X-Accel-Expires", "X-Accel-Redirect", "X-Accel-Limit-Rate", "X-Accel-Buffering",
    # "X-Accel-Charset" are never passed to the client (proxy_hide_header's default). Server:
    # ingress-nginx adds no `proxy_pass_header Server` unless allow-backend-server-header, and
    # `more_clear_headers Server` with the default show-server-tokens false: no Server at all.
    out = _response_with(name + b": /internal/secret\r\nX-Kept: 1\r\n")
    assert status_of(out) == 200
    assert name.lower() not in _names(out)
    assert b"x-kept" in _names(out)


def _upstream_head(pair: ProxyPair) -> bytes:
    raw = bytes(pair.upstreams[0].raw)
    return raw[: raw.index(b"\r\n\r\n") + 4]


def _header(head: bytes, name: bytes) -> list[bytes]:
    return [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]
            if b":" in line and line.split(b":", 1)[0].lower() == name]


def test_compute_full_forwarded_for_needs_use_forwarded_headers() -> None:
    # nginx.tmpl: `{{ if and $all.Cfg.UseForwardedHeaders $all.Cfg.ComputeFullForwardedFor }}
    # proxy_set_header X-Forwarded-For $full_x_forwarded_for; {{ else }} ... $remote_addr`:
    # compute-full-forwarded-for alone never passes the client's chain on.
    s = ProxySettings(compute_full_forwarded_for=True)
    pair = ProxyPair(settings=s)
    pair.send(b"GET / HTTP/1.1\r\n" + HOST + b"X-Forwarded-For: 6.6.6.6\r\n\r\n")
    head = _upstream_head(pair)
    assert _header(head, b"x-forwarded-for") == [b"203.0.113.7"]
    assert _header(head, b"x-real-ip") == [b"203.0.113.7"]
    # X-Original-Forwarded-For is always the incoming header ($http_x_forwarded_for).
    assert _header(head, b"x-original-forwarded-for") == [b"6.6.6.6"]


def test_compute_full_forwarded_for_with_use_forwarded_headers_appends() -> None:
    # `map $http_x_forwarded_for $full_x_forwarded_for { default "$http_x_forwarded_for,
    # $realip_remote_addr"; ''  "$realip_remote_addr"; }`
    s = ProxySettings(compute_full_forwarded_for=True, use_forwarded_headers=True)
    pair = ProxyPair(settings=s)
    pair.send(b"GET / HTTP/1.1\r\n" + HOST + b"X-Forwarded-For: 6.6.6.6\r\n\r\n")
    assert _header(_upstream_head(pair), b"x-forwarded-for") == [b"6.6.6.6, 203.0.113.7"]


TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.0/24",))


def test_trusted_x_forwarded_proto_https_is_not_redirected() -> None:
    # lua_ingress.lua rewrite(): with use_forwarded_headers "trust http_x_forwarded_proto
    # headers correctly indicate ssl offloading": pass_access_scheme = $http_x_forwarded_proto;
    # redirect_to_https(): `if ngx.var.pass_access_scheme ~= "http" then return false end`
    # (force_ssl_redirect too: `force_ssl_redirect and pass_access_scheme == "http"`). A TLS
    # offloading load balancer in front must not get a redirect loop.
    offloaded = b"GET /a HTTP/1.1\r\n" + HOST + b"X-Forwarded-Proto: https\r\n\r\n"
    pair = ProxyPair(settings=TRUSTED, tls_hosts={"example.test"})
    assert status_of(pair.send(offloaded)) == 200
    force = Route("/", annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"})
    assert status_of(ProxyPair([force], settings=TRUSTED).send(offloaded)) == 200


def test_untrusted_x_forwarded_proto_is_still_redirected() -> None:
    offloaded = b"GET /a HTTP/1.1\r\n" + HOST + b"X-Forwarded-Proto: https\r\n\r\n"
    # No trusted hop (our default), or use-forwarded-headers off: the header is the client's.
    for s in (ProxySettings(use_forwarded_headers=True),
              ProxySettings(proxy_real_ip_cidr=("203.0.113.0/24",))):
        out = ProxyPair(settings=s, tls_hosts={"example.test"}).send(offloaded)
        assert status_of(out) == 308
    # And a trusted "http" is plain http.
    plain = b"GET /a HTTP/1.1\r\n" + HOST + b"X-Forwarded-Proto: http\r\n\r\n"
    assert status_of(ProxyPair(settings=TRUSTED, tls_hosts={"example.test"}).send(plain)) == 308


def test_trusted_x_forwarded_proto_http_on_tls_is_redirected_when_forced() -> None:
    # `map "$scheme:$pass_access_scheme"` / redirect_to_https(): the scheme that counts is the
    # one the trusted hop reports: TLS from the load balancer, plain http from the client.
    force = Route("/", annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"})
    plain = b"GET /a HTTP/1.1\r\n" + HOST + b"X-Forwarded-Proto: http\r\n\r\n"
    out = ProxyPair([force], settings=TRUSTED, tls=True).send(plain)
    assert status_of(out) == 308 and b"location: https://example.test/a\r\n" in out


def test_trusted_x_forwarded_host_takes_the_first_element() -> None:
    # lua_ingress.lua parse_x_forwarded_host(): `ngx_re_split(ngx.var.http_x_forwarded_host,
    # ",")` then `return hosts[1]`; nginx >= 1.23 joins repeated headers for $http_*, so the
    # first header's first element.
    pair = ProxyPair(settings=TRUSTED)
    pair.send(b"GET / HTTP/1.1\r\n" + HOST + b"X-Forwarded-Host: a.example, b.example\r\n"
              b"X-Forwarded-Host: c.example\r\n\r\n")
    assert _header(_upstream_head(pair), b"x-forwarded-host") == [b"a.example"]


def test_invalid_header_names_are_dropped_like_nginx() -> None:
    # nginx ngx_http_parse_header_line(): a name character outside its `lowcase` table
    # (letters, digits, '-'), other than an allowed '_', sets `r->invalid_header = 1`, and
    # ngx_http_process_request_headers() skips such a line under `ignore_invalid_headers on`
    # (ingress-nginx `ignore-invalid-headers: "true"`, the default). h11 accepts any token.
    head = (b"GET / HTTP/1.1\r\n" + HOST + b"X.Forwarded.For: 6.6.6.6\r\nX~Y: 1\r\n"
            b"X!Y: 1\r\nAccept-2: ok\r\n\r\n")
    pair = ProxyPair()
    pair.send(head)
    names = _names(_upstream_head(pair))
    assert b"accept-2" in names
    assert not {b"x.forwarded.for", b"x~y", b"x!y"} & set(names)
    kept = ProxyPair(settings=ProxySettings(ignore_invalid_headers=False))
    kept.send(head)
    assert {b"x.forwarded.for", b"x~y", b"x!y"} <= set(_names(_upstream_head(kept)))


@pytest.mark.parametrize(("code", "reason"), [
    (301, b"Moved Permanently"),
    (302, b"Found"),
    (307, b"Temporary Redirect"),
    (308, b"Permanent Redirect")])
def test_ssl_redirect_uses_http_redirect_code(code: int, reason: bytes) -> None:
    # lua_ingress.lua: `return ngx_redirect(uri, config.http_redirect_code)`.
    pair = ProxyPair(settings=ProxySettings(http_redirect_code=code), tls_hosts={"example.test"})
    out = pair.send(GET)
    assert out.startswith(b"HTTP/1.1 %d %s\r\n" % (code, reason))
    assert b"location: https://example.test/a\r\n" in out


def test_forwarded_helpers() -> None:
    items = [(b"X-Forwarded-Proto", b"x-forwarded-proto", b"https"),
             (b"Other", b"other", b"1"),
             (b"x-forwarded-proto", b"x-forwarded-proto", b"http")]
    assert http_header(items, b"x-forwarded-proto") == b"https, http"
    assert http_header(items, b"other") == b"1"
    assert http_header(items, b"x-forwarded-host") is None
    assert first_forwarded_host(b" a.example , b.example") == b"a.example"
    assert first_forwarded_host(b"a.example") == b"a.example"
    assert redirect_scheme("http", b"https") == "https"
    assert redirect_scheme("https", b"http") == "http"
    # a trusted empty X-Forwarded-Proto is set, and empty (lua_ingress.lua; session 24)
    assert redirect_scheme("http", None) == "http" and redirect_scheme("https", b"") == ""


def test_client_ip_from_chain_entries_with_ports() -> None:
    # nginx ngx_http_get_forwarded_addr_internal() parses each entry with
    # ngx_parse_addr_port(): "1.2.3.4:5678" and "[2001:db8::1]:443" are addresses with a port
    # (some load balancers write them), the port dropped, as $remote_addr has none.
    policy = TrustPolicy(["10.0.0.0/8"])
    assert client_ip_from_chain("1.1.1.1:5678", "10.0.0.1", policy) == "1.1.1.1"
    assert client_ip_from_chain("[2001:db8::1]:443, 10.0.0.2:80", "10.0.0.1",
                                policy) == "2001:db8::1"
    assert client_ip_from_chain("[2001:db8::1]", "10.0.0.1", policy) == "2001:db8::1"
    assert client_ip_from_chain("2001:db8::1", "10.0.0.1", policy) == "2001:db8::1"
    # Still no address: an unparsable entry ends the walk at the last good one.
    assert client_ip_from_chain("1.1.1.1:x", "10.0.0.1", policy) == "10.0.0.1"
    assert client_ip_from_chain("[::1", "10.0.0.1", policy) == "10.0.0.1"
    assert client_ip_from_chain("1.1.1.1:99999", "10.0.0.1", policy) == "10.0.0.1"


def test_forwarded_entry_with_a_port_through_the_core() -> None:
    pair = ProxyPair(settings=TRUSTED)
    pair.send(b"GET / HTTP/1.1\r\n" + HOST + b"X-Forwarded-For: 198.51.100.9:50123\r\n\r\n")
    head = _upstream_head(pair)
    assert _header(head, b"x-real-ip") == [b"198.51.100.9"]
    assert _header(head, b"x-forwarded-for") == [b"198.51.100.9"]
    assert pair.records[0].client_ip == "198.51.100.9"


def test_ipv4_mapped_peer_matches_ipv4_cidrs() -> None:
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; nginx's ngx_cidr_match()
    # compares an IN6_IS_ADDR_V4MAPPED address as the IPv4 one, so set_real_ip_from 10.0.0.0/8
    # trusts ::ffff:10.1.2.3.
    policy = TrustPolicy(["10.0.0.0/8"])
    assert policy.trusted("::ffff:10.1.2.3")
    assert not policy.trusted("::ffff:11.1.2.3")
    assert client_ip_from_chain("1.1.1.1, ::ffff:10.0.0.2", "::ffff:10.0.0.1",
                                policy) == "1.1.1.1"


def test_redirect_decided_by_a_trusted_hop_names_no_port_of_ours() -> None:
    # lua_ingress.lua: `local uri = string_format("https://%s%s", redirect_host(), request_uri)`
    # (a port only with use-port-in-redirects): the client reached the hop in front, whose
    # https port is not our listener's.
    plain = b"GET /a HTTP/1.1\r\n" + HOST + b"X-Forwarded-Proto: http\r\n\r\n"
    out = ProxyPair(settings=TRUSTED, tls_hosts={"example.test"}, https_port=8443).send(plain)
    assert status_of(out) == 308 and b"location: https://example.test/a\r\n" in out
    # Without a forwarded scheme our own https port is named, as before.
    out = ProxyPair(settings=TRUSTED, tls_hosts={"example.test"}, https_port=8443).send(GET)
    assert b"location: https://example.test:8443/a\r\n" in out


@pytest.mark.parametrize("host", [b"a..b", b"example.test..", b"..", b"a..b:80"])
def test_host_with_consecutive_dots_is_refused(host: bytes) -> None:
    # nginx ngx_http_validate_host(): `case '.': if (dot_pos == i - 1) { return NGX_DECLINED; }`
    # -> 400 "client sent invalid host header".
    with pytest.raises(RemoteProxyError) as e:
        check_host(host)
    assert e.value.status_hint == 400
    # One trailing dot stays valid (nginx strips it; so does our routing).
    check_host(b"example.test.")


def test_forwarded_entry_with_an_ipv6_zone_is_not_an_address() -> None:
    # Python's ipaddress takes a scope id after '%' ("fe80::1%eth0", any text up to the end,
    # spaces and non-ASCII included); nginx's ngx_parse_addr_port()/ngx_inet6_addr() reads no
    # zone, so such an entry is not an address and ends the walk. Before: the entry became the
    # client address, "fe80::1%a b" went into X-Real-IP and a non-ASCII one raised
    # UnicodeEncodeError out of the core instead of forwarding the request.
    policy = TrustPolicy(["10.0.0.0/8"])
    assert client_ip_from_chain("fe80::1%eth0", "10.0.0.1", policy) == "10.0.0.1"
    assert client_ip_from_chain("[fe80::1%eth0]:80, 10.0.0.2", "10.0.0.1", policy) == "10.0.0.2"
    for value in (b"fe80::1%\xe9", b"fe80::1%a b"):
        pair = ProxyPair(settings=TRUSTED)
        out = pair.send(b"GET / HTTP/1.1\r\n" + HOST + b"X-Forwarded-For: " + value + b"\r\n\r\n")
        assert status_of(out) == 200
        head = _upstream_head(pair)
        assert _header(head, b"x-real-ip") == [b"203.0.113.7"]
        assert pair.records[0].client_ip == "203.0.113.7"


# -- what becomes of a request header (shared by the proxy core and IngressASGI) -------------

XFF = b"x-forwarded-for"


@pytest.mark.parametrize("name,named,settings,kind", [
    (b"accept", [], S, HeaderKind.PASS),
    (b"host", [], S, HeaderKind.HOST),
    (b"content-length", [b"content-length"], S, HeaderKind.LENGTH),  # hop set before Connection
    (b"transfer-encoding", [], S, HeaderKind.CHUNKED),
    (b"upgrade", [b"upgrade"], S, HeaderKind.UPGRADE),
    (b"keep-alive", [], S, HeaderKind.DROP),
    (b"proxy", [], S, HeaderKind.DROP),  # httpoxy
    (b"x-forwarded-for", [], S, HeaderKind.FORWARDED_FOR),
    (b"x-forwarded-for", [b"x-forwarded-for"], S, HeaderKind.FORWARDED_FOR),  # rewritten anyway
    (b"x-forwarded-host", [], S, HeaderKind.FORWARDED),
    (b"x-request-id", [], S, HeaderKind.REQUEST_ID),
    (b"x-request-id", [b"x-request-id"], S, HeaderKind.DROP),
    (b"x-hop", [b"x-hop"], S, HeaderKind.DROP),
    (b"x_custom", [], S, HeaderKind.DROP),  # underscores_in_headers off
    (b"x_custom", [], ProxySettings(enable_underscores_in_headers=True), HeaderKind.PASS),
    (b"x_forwarded_for", [], ProxySettings(enable_underscores_in_headers=True), HeaderKind.DROP),
    (b"x_hop", [b"x-hop"], ProxySettings(enable_underscores_in_headers=True), HeaderKind.DROP),
    (b"x.dot", [], S, HeaderKind.DROP),  # ignore_invalid_headers
    (b"x.dot", [], ProxySettings(ignore_invalid_headers=False), HeaderKind.PASS),
])
def test_request_header_kind(name: bytes, named: list[bytes], settings: ProxySettings,
                             kind: HeaderKind) -> None:
    ff_name = settings.forwarded_for_header.lower().encode()
    assert request_header_kind(name, named, ff_name, settings) is kind
    # The fast path's promise: a name outside the special set, valid and not named in
    # Connection, is PASS.
    if name not in special_request_names(ff_name) and not name.translate(
            None, HEADER_NAME_CHARS) and name not in named:
        assert kind is HeaderKind.PASS


def test_request_header_kind_follows_the_forwarded_for_header() -> None:
    s = ProxySettings(forwarded_for_header="X-Real-IP")
    assert request_header_kind(b"x-real-ip", [], b"x-real-ip", s) is HeaderKind.FORWARDED_FOR
    assert request_header_kind(XFF, [], b"x-real-ip", s) is HeaderKind.FORWARDED
    s = ProxySettings(forwarded_for_header="X-Client-IP")
    assert request_header_kind(b"x-client-ip", [], b"x-client-ip", s) is \
        HeaderKind.FORWARDED_FOR
    assert b"x-client-ip" in special_request_names(b"x-client-ip")
    assert special_request_names(b"x-client-ip") is special_request_names(b"x-client-ip")


def test_request_ids_and_local_bodies() -> None:
    gen = RequestIds()
    ids = [gen() for _ in range(600)]  # past one 4 KiB refill
    assert len(set(ids)) == 600
    assert all(len(i) == 32 and i == i.lower() and int(i, 16) >= 0 for i in ids)
    assert local_body(404) == b"404 Not Found\n"
    assert local_body(599) == b"599 Error\n"
