"""A second review of the client address chain (session 33, helper x9): who the client is and
what the upstream is told, with ingress-nginx's nginx.tmpl and nginx's realip module
(src/http/modules/ngx_http_realip_module.c, src/http/ngx_http_core_module.c
``ngx_http_get_forwarded_addr``) and PROXY protocol reader (src/core/ngx_proxy_protocol.c) as
the specification.

Defects found and fixed (each test below failed before its fix):

- The auth subrequest (``auth-url``; proxy/_extauth.py ``subrequest_head``, shared by the
  core and IngressASGI) carried the client's header named by a ``forwarded-for-header`` other
  than X-Forwarded-For (``CF-Connecting-IP``), and with ``enable-underscores-in-headers`` its
  ``_`` spelling, from any peer: the address header the operator names as the client's reached
  the auth service as the client wrote it, from a peer outside ``proxy-real-ip-cidr`` too,
  where the backend never gets it (README's divergences: read as the chain, sent as
  X-Original-Forwarded-For). It is kept out now unless the peer is trusted (the rule of the
  subrequest's other forwarded headers), and its ``_`` spelling always (as on the way to a
  backend).

Checked and found right (no change):

- realip (``client_address``): read only with use-forwarded-headers or enable-real-ip, only
  from a peer inside proxy-real-ip-cidr (v4-mapped peers compared as IPv4, ngx_cidr_match);
  the walk from the right skipping trusted hops, stopping at the first untrusted or
  unparsable entry (the last trusted hop then), several lines walked last first and the walk
  going to the line before only when every entry of a line was trusted
  (ngx_http_get_forwarded_addr's NGX_OK / NGX_DONE / NGX_DECLINED); separators, leading
  zeros, empty octets, ``255.255.255.255`` refused, ports, ``[v6]:port``: a differential run
  of 200,000 random chains against a port of ngx_http_get_forwarded_addr_internal,
  ngx_parse_addr_port, ngx_inet_addr and ngx_inet6_addr differs only on the documented bare
  ``[v6]`` and on IPv6 spellings no proxy writes (``:1:2:3:4:5:6:7:8``, ``::010.0.0.1``,
  ``::255.255.255.255``, ``fe80::11.2.3.``: ngx_inet6_addr's own quirks);
- use-proxy-protocol: the header's client is the client (``real_ip_header proxy_protocol``),
  never an X-Forwarded-For chain; only from a trusted peer; UNKNOWN / LOCAL / a source that is
  no IP keep the TCP peer; v1 and v2 read as ngx_proxy_protocol_read / _v2_read do (the
  UNKNOWN skip to the first CRLF, ports by ngx_atoi, v2 command / transport / family
  skipping, the address block length), a header that never completes closed at the timeout;
- X-Forwarded-Proto / -Host / -Port read only with use-forwarded-headers from a trusted peer
  (never with enable-real-ip alone), repeated lines joined with ", " ($http_*), an empty one
  sending no header; the PROXY protocol port 443 read after them; X-Forwarded-Host the first
  element of a trusted hop's list;
- X-Real-IP and X-Forwarded-For the client found ($remote_addr), $full_x_forwarded_for
  (compute-full-forwarded-for with use-forwarded-headers only) the X-Forwarded-For lines
  joined with ", " then the TCP peer ($realip_remote_addr; the PROXY header's client with
  use-proxy-protocol, $proxy_protocol_addr) whatever forwarded-for-header names;
  X-Original-Forwarded-For the forwarded-for header's lines; IPv6 without brackets;
- the client's X-Real-IP, X-Forwarded-*, X-Scheme, X-Original-Forwarded-For, X-Original-URI
  and X-Request-ID (unless a token) never reach the backend as written, nor their ``_``
  spellings; the auth subrequest replaces X-Real-IP / X-Forwarded-For / X-Forwarded-Proto;
- whitelist-source-range, denylist-source-range, limit-rps/-connections and their allowlist,
  global-rate-limit and upstream-hash-by ``$remote_addr`` read the client found, never the
  TCP peer behind a trusted hop; a 400 before the head is parsed logs the TCP peer (realip
  never ran); IngressASGI reads the same function with the scope's ``client`` as the peer.
"""

from __future__ import annotations

from typing import Any

from ingresslib.proxy import ProxySettings

from test_asgi_extauth_s26 import AuthService, call, lines, manifests, run
from test_extauth_s26 import AUTH, WEB, _headers, _pair, _ups

#: The ``forwarded-for-header`` of a CDN that writes the client's address (Cloudflare).
CF = "CF-Connecting-IP"
#: A request whose client wrote that header, and its ``_`` spelling, itself.
FORGED = (b"GET /a HTTP/1.1\r\nHost: app.test\r\nCF-Connecting-IP: 10.1.1.1\r\n"
          b"CF_Connecting_IP: 10.2.2.2\r\n\r\n")


def _auth_headers(settings: ProxySettings, head: bytes = FORGED,
                  **kw: Any) -> tuple[dict[bytes, list[bytes]], dict[bytes, list[bytes]]]:
    """The auth service's and the backend's request headers for ``head`` through the core."""
    p = _pair(settings=settings, **kw)
    p.send(head)
    return _headers(_ups(p, AUTH)[0]), _headers(_ups(p, WEB)[0])


# ------------------------------------------------ the auth subrequest and forwarded-for-header
def test_core_auth_service_never_gets_an_untrusted_clients_forwarded_for_header() -> None:
    # The peer (203.0.113.7) is outside proxy-real-ip-cidr: the client wrote the header.
    auth, web = _auth_headers(ProxySettings(
        forwarded_for_header=CF, use_forwarded_headers=True,
        proxy_real_ip_cidr=("10.9.0.0/16",), enable_underscores_in_headers=True))
    assert b"cf-connecting-ip" not in auth and b"cf_connecting_ip" not in auth
    assert auth[b"x-real-ip"] == [b"203.0.113.7"] and auth[b"x-forwarded-for"] == [b"203.0.113.7"]
    # As the backend, which never gets it (read as the chain, kept in X-Original-Forwarded-For).
    assert b"cf-connecting-ip" not in web and b"cf_connecting_ip" not in web
    assert web[b"x-original-forwarded-for"] == [b"10.1.1.1"]


def test_core_auth_service_without_use_forwarded_headers_gets_no_forwarded_for_header() -> None:
    auth, _ = _auth_headers(ProxySettings(forwarded_for_header=CF))
    assert b"cf-connecting-ip" not in auth and b"cf_connecting_ip" not in auth


def test_core_trusted_hops_forwarded_for_header_reaches_the_auth_service() -> None:
    # nginx's auth location passes the request's headers (proxy_pass_request_headers on): a
    # trusted hop's header passes, as its X-Forwarded-Host does; its ``_`` spelling never.
    settings = ProxySettings(forwarded_for_header=CF, use_forwarded_headers=True,
                             proxy_real_ip_cidr=("203.0.113.0/24",),
                             enable_underscores_in_headers=True)
    auth, web = _auth_headers(settings)
    assert auth[b"cf-connecting-ip"] == [b"10.1.1.1"] and b"cf_connecting_ip" not in auth
    assert auth[b"x-real-ip"] == [b"10.1.1.1"]
    assert web[b"x-real-ip"] == [b"10.1.1.1"] and b"cf-connecting-ip" not in web


def test_asgi_auth_service_never_gets_an_untrusted_clients_forwarded_for_header() -> None:
    async def go() -> tuple[Any, AuthService]:
        async with AuthService() as auth:
            seen = await call(manifests(auth.port),
                              [(b"cf-connecting-ip", b"10.1.1.1"),
                               (b"cf_connecting_ip", b"10.2.2.2")],
                              auth=auth, settings=ProxySettings(
                                  forwarded_for_header=CF, use_forwarded_headers=True,
                                  proxy_real_ip_cidr=("10.9.0.0/16",),
                                  enable_underscores_in_headers=True))
            return seen, auth
    seen, auth = run(go())
    assert seen.status == 200
    [head] = auth.heads
    h = lines(head)
    assert b"cf-connecting-ip" not in h and b"cf_connecting_ip" not in h
    assert h[b"x-real-ip"] == [b"127.0.0.1"]
    assert seen.app_header(b"cf-connecting-ip") == []
