"""Review of the headers the proxy sends upstream and back (session 18, F18).

What a client's forwarded headers become, with ``use-forwarded-headers`` off and on, and how a
forwarded-for header sent as several lines is read: nginx (>= 1.23) keeps repeated request
headers as a linked list, and its realip module walks the X-Forwarded-For lines one by one,
last line first (src/http/ngx_http_core_module.c ``ngx_http_get_forwarded_addr``: "/* iterate
over all headers in reverse order */ ... rc = ngx_http_get_forwarded_addr_internal(r, addr,
h->value.data, h->value.len, proxies, recursive);"), each line read on its own.
"""

from __future__ import annotations

import random

import pytest
from _proxy_harness import ProxyPair, Route, ingress_yaml, routed_pair, status_of

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._headers import (
    TrustPolicy,
    _chain_address,
    client_address,
    client_ip_from_chain,
)

HOST = b"Host: example.test\r\n"
#: The harness's peer (203.0.113.7) is the trusted hop in front: a load balancer that adds a
#: line of its own (HAProxy's ``option forwardfor`` adds an X-Forwarded-For line) after
#: whatever the client sent.
TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.0/24",))
CLIENT = b"198.51.100.9"


def _upstream_head(pair: ProxyPair) -> bytes:
    raw = bytes(pair.upstreams[0].raw)
    return raw[: raw.index(b"\r\n\r\n") + 4]


def _header(head: bytes, name: bytes) -> list[bytes]:
    return [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]
            if b":" in line and line.split(b":", 1)[0].lower() == name]


def _send(pair: ProxyPair, extra: bytes) -> bytes:
    return pair.send(b"GET /a HTTP/1.1\r\n" + HOST + extra + b"\r\n")


# --- several forwarded-for lines ------------------------------------------------------------

def test_an_empty_first_line_does_not_hide_the_hop_s_line() -> None:
    # The client sends "X-Forwarded-For:" (empty), the trusted hop adds its own line naming
    # the client. nginx reads the hop's line first: the client is 198.51.100.9. Before, the
    # lines were joined with "," into ",198.51.100.9", whose leading separator spoils the
    # first entry (the rule for one line), and the client address was the hop's own.
    pair = ProxyPair(settings=TRUSTED)
    assert status_of(_send(pair, b"X-Forwarded-For:\r\nX-Forwarded-For: " + CLIENT + b"\r\n")) \
        == 200
    head = _upstream_head(pair)
    assert _header(head, b"x-real-ip") == [CLIENT]
    assert _header(head, b"x-forwarded-for") == [CLIENT]
    assert pair.records[0].client_ip == CLIENT.decode()


def test_the_hidden_client_does_not_pass_an_allowlist_of_the_hop_s_network() -> None:
    # What the wrong address let through: an allowlist naming the load balancer's network
    # (the "internal" range) admitted any client that sent an empty X-Forwarded-For first.
    allow = Route("/", annotations={
        "nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"})
    pair = ProxyPair([allow], settings=TRUSTED)
    out = _send(pair, b"X-Forwarded-For:\r\nX-Forwarded-For: " + CLIENT + b"\r\n")
    assert status_of(out) == 403
    assert not pair.upstreams
    # The hop itself (no forwarded-for line) is still admitted.
    assert status_of(_send(ProxyPair([allow], settings=TRUSTED), b"")) == 200


def test_each_line_is_read_on_its_own() -> None:
    policy = TrustPolicy(["10.0.0.0/8"])
    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))

    def client(*lines: bytes) -> str | None:
        return client_address("10.0.0.1", s, policy,
                              [(b"x-forwarded-for", line) for line in lines])

    # Lines are walked last first, entries right to left, trusted hops skipped.
    assert client(b"198.51.100.1", b"10.0.0.2") == "198.51.100.1"
    assert client(b"198.51.100.1, 10.0.0.3", b"10.0.0.2, 10.0.0.4") == "198.51.100.1"
    assert client(b"198.51.100.1", b"198.51.100.2") == "198.51.100.2"
    # An empty line has no entry: the walk stops there (nginx parses nothing of it), whether
    # it is the last line or one before.
    assert client(b"", CLIENT) == CLIENT.decode()
    assert client(CLIENT, b"") == "10.0.0.1"
    assert client(b"198.51.100.1", b"", b"10.0.0.2") == "10.0.0.2"
    # A line's first byte is never a separator, so a line starting with one spoils its first
    # entry (as for one line, ``client_ip_from_chain``), whatever the line before holds.
    assert client(b"198.51.100.1", b",198.51.100.2") == "10.0.0.1"
    assert client(b"198.51.100.1", b",198.51.100.2, 10.0.0.2") == "10.0.0.2"
    assert client_ip_from_chain(",198.51.100.2", "10.0.0.1", policy) == "10.0.0.1"
    # One line: as before.
    assert client(b"198.51.100.1, 10.0.0.2") == "198.51.100.1"
    assert client(b"") == "10.0.0.1"


@pytest.mark.parametrize("general", [False, True])
def test_ingress_asgi_reads_the_lines_the_same_way(general: bool) -> None:
    # IngressASGI asks the same ``client_address`` (its fast scan and its general path).
    from test_asgi_header_types_s15 import HOST as ASGI_HOST
    from test_asgi_header_types_s15 import _app, _status

    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.1/32",))
    app, seen = _app(True, general, settings)
    assert _status(app, [ASGI_HOST, (b"x-forwarded-for", b""),
                         (b"x-forwarded-for", CLIENT)]) == 200
    assert dict(seen[0]["headers"])[b"x-real-ip"] == CLIENT


def test_lines_of_a_custom_forwarded_for_header_are_read_the_same_way() -> None:
    s = ProxySettings(use_forwarded_headers=True, forwarded_for_header="X-Client-IP",
                      proxy_real_ip_cidr=("203.0.113.0/24",))
    pair = ProxyPair(settings=s)
    _send(pair, b"X-Client-IP:\r\nX-Client-IP: " + CLIENT + b"\r\n")
    assert _header(_upstream_head(pair), b"x-real-ip") == [CLIENT]


# --- what reaches the backend of a client's forwarded headers --------------------------------

SPOOF = (b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Proto: https\r\n"
         b"X-Forwarded-Host: evil.test\r\nX-Forwarded-Port: 1234\r\nX-Real-IP: 8.8.8.8\r\n"
         b"X-Forwarded-Scheme: https\r\nX-Scheme: https\r\nX-Original-URI: /admin\r\n"
         b"X-Original-Forwarded-For: 5.5.5.5\r\nX-Forwarded-Prefix: /p\r\n")
OURS = {b"x-forwarded-for": [b"203.0.113.7"], b"x-real-ip": [b"203.0.113.7"],
        b"x-forwarded-host": [b"example.test"], b"x-forwarded-port": [b"80"],
        b"x-forwarded-proto": [b"http"], b"x-forwarded-scheme": [b"http"],
        b"x-scheme": [b"http"], b"x-original-uri": [], b"x-forwarded-prefix": [],
        # nginx.tmpl: "proxy_set_header X-Original-Forwarded-For {{ buildForwardedFor
        # $all.Cfg.ForwardedForHeader }};" -- $http_x_forwarded_for, always: the client's
        # chain (its lines joined with ", ", nginx >= 1.23), never its own header.
        b"x-original-forwarded-for": [b"6.6.6.6, 7.7.7.7"]}


@pytest.mark.parametrize("settings", [
    ProxySettings(),
    ProxySettings(use_forwarded_headers=True),  # on, but the peer is no trusted hop
    ProxySettings(proxy_real_ip_cidr=("203.0.113.0/24",)),  # trusted, but off
    ProxySettings(use_forwarded_headers=True, compute_full_forwarded_for=False),
])
def test_an_untrusted_client_s_forwarded_headers_are_replaced_not_appended(
        settings: ProxySettings) -> None:
    pair = ProxyPair(settings=settings)
    assert status_of(_send(pair, SPOOF)) == 200
    head = _upstream_head(pair)
    for name, values in OURS.items():
        assert _header(head, name) == values, name


def test_a_trusted_hop_s_forwarded_headers_are_passed_on() -> None:
    pair = ProxyPair(settings=TRUSTED)
    _send(pair, SPOOF)
    head = _upstream_head(pair)
    assert _header(head, b"x-forwarded-for") == [b"7.7.7.7"]  # realip: the rightmost
    assert _header(head, b"x-forwarded-host") == [b"evil.test"]
    assert _header(head, b"x-forwarded-port") == [b"1234"]
    assert [_header(head, n) for n in (b"x-forwarded-proto", b"x-forwarded-scheme",
                                       b"x-scheme")] == [[b"https"]] * 3
    # Never the client's own: these are this hop's to write (or not).
    assert _header(head, b"x-original-uri") == [] and _header(head, b"x-forwarded-prefix") == []


# --- the walk over lines against a transcription of nginx's --------------------------------

_POLICY = TrustPolicy(["10.0.0.0/8", "fd00::/8"])


def _nginx_line(addr: str, xff: str) -> tuple[str, str]:
    """ngx_http_get_forwarded_addr_internal(), byte for byte (entries read by our
    ``_chain_address``, nginx's ngx_parse_addr_port as the s16 review transcribed it)."""
    found = False
    xfflen = len(xff)
    while True:
        if not _POLICY.trusted(addr):  # "if (ngx_cidr_match(addr->sockaddr, proxies) != NGX_OK)"
            return addr, "DONE" if found else "DECLINED"
        p = xfflen - 1  # "for (p = xff + xfflen - 1; p > xff; p--, xfflen--)"
        while p > 0 and xff[p] in " ,":
            p -= 1
            xfflen -= 1
        while p > 0:
            if xff[p] in " ,":
                p += 1
                break
            p -= 1
        # An empty line: p = xff - 1, one byte before the value (':' or ' '): no address.
        entry = _chain_address(xff[p:xfflen]) if p >= 0 else None
        if entry is None:
            return addr, "DONE" if found else "DECLINED"
        addr, found = entry, True
        xfflen = p - 1
        if not p > 0:  # "} while (recursive && p > xff);"
            return addr, "OK"


def _nginx_lines(lines: list[str], peer: str) -> str:
    """ngx_http_get_forwarded_addr() over the lines, last first; DECLINED: the peer stays."""
    addr, found, rc = peer, False, "DECLINED"
    for line in reversed(lines):
        addr, rc = _nginx_line(addr, line)
        if rc == "DECLINED" and found:
            rc = "DONE"
            break
        if rc != "OK":
            break
        found = True
    return peer if rc == "DECLINED" else addr


def test_the_walk_agrees_with_nginx_s_over_random_lines() -> None:
    atoms = ["10.0.0.5", "203.0.113.9", "010.0.0.7", "fd00::1", "[fd00::2]:80", "2001:db8::1",
             "bogus", "", "198.51.100.1:80"]
    rnd = random.Random(18)
    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8", "fd00::/8"))
    for _ in range(3000):
        lines = []
        for _ in range(rnd.randint(1, 4)):
            line = rnd.choice([",", " ,", ""]) + "".join(
                rnd.choice(atoms) + rnd.choice([",", " ", ", ", ""])
                for _ in range(rnd.randint(0, 3)))
            lines.append(line.strip(" \t"))  # h11 takes OWS off both ends of a value
        got = client_address("10.0.0.1", s, _POLICY,
                             [(b"x-forwarded-for", line.encode()) for line in lines])
        assert got == _nginx_lines(lines, "10.0.0.1"), lines


# --- rewrite-target, ports ------------------------------------------------------------------

def test_original_uri_is_the_raw_target_and_the_host_keeps_its_port() -> None:
    # nginx.tmpl: "proxy_set_header X-Original-URI $request_uri;" (the raw target, before any
    # rewrite) with proxy-add-original-uri-header; "proxy_set_header X-Forwarded-Host
    # $best_http_host;" = $http_host, port included. X-Forwarded-Prefix only with a rewrite.
    a = "nginx.ingress.kubernetes.io/"
    pair = routed_pair(
        ingress_yaml("i", "example.test", {a + "rewrite-target": "/", a + "x-forwarded-prefix":
                                           "/api"}, path="/api"),
        settings=ProxySettings(proxy_add_original_uri_header=True))
    pair.send(b"GET /api/x%2Dy?q=1 HTTP/1.1\r\nHost: Example.test:8080\r\n"
              b"X-Original-URI: /evil\r\nX-Forwarded-Prefix: /evil\r\n\r\n")
    head = _upstream_head(pair)
    assert head.startswith(b"GET /?q=1 HTTP/1.1\r\n")
    assert _header(head, b"x-original-uri") == [b"/api/x%2Dy?q=1"]
    assert _header(head, b"x-forwarded-prefix") == [b"/api"]
    assert _header(head, b"x-forwarded-host") == [b"Example.test:8080"]
