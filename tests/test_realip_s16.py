"""The forwarded-for chain read as nginx's realip module reads it (session 16).

nginx ngx_http_get_forwarded_addr_internal() splits the chain on commas and spaces and reads
each entry with ngx_parse_addr_port() / ngx_inet_addr(); ingress-nginx turns it on with
``real_ip_recursive on`` (nginx.tmpl). Whatever the reading, only hops inside
``proxy-real-ip-cidr`` are skipped.
"""

from __future__ import annotations

import json
import logging
import random

from _proxy_harness import ProxyPair
from _records import rec

from ingresslib._accesslog import AccessLogFormatter, access_fields, format_line
from ingresslib.proxy._actions import TimerKind
from ingresslib.proxy._headers import (
    TrustPolicy,
    _chain_address,
    client_address,
    client_ip_from_chain,
)
from ingresslib.proxy._settings import ProxySettings

POLICY = TrustPolicy(["10.0.0.0/8", "fd00::/8"])
PEER = "10.0.0.1"


def ip(chain: str) -> str:
    return client_ip_from_chain(chain, PEER, POLICY)


def test_entries_are_separated_by_spaces_as_well_as_commas() -> None:
    # "1.2.3.4 10.0.0.3" is two entries to nginx: the trusted hop is skipped.
    assert ip("203.0.113.9 10.0.0.3") == "203.0.113.9"
    assert ip("198.51.100.1,203.0.113.9  10.0.0.3 , 10.0.0.4") == "203.0.113.9"
    assert ip("fd00::1 203.0.113.9") == "203.0.113.9"


def test_ipv4_octets_are_decimal_with_leading_zeros() -> None:
    # ngx_inet_addr(): "octet = octet * 10 + (c - '0')" -- 010 is ten, not octal eight.
    assert ip("203.0.113.9, 010.0.0.3") == "203.0.113.9"
    assert ip("198.051.100.001") == "198.51.100.1"  # returned as $remote_addr prints it
    assert ip("203.0.113.9, 010.0.0.3:8080") == "203.0.113.9"
    # 256 is no octet, and 255.255.255.255 is INADDR_NONE: both stop the walk.
    assert ip("203.0.113.9, 10.0.0.256") == PEER
    assert ip("203.0.113.9, 255.255.255.255") == PEER


def test_a_bracketed_address_with_a_port() -> None:
    # ngx_parse_addr_port(): "[" address "]:" port; ngx_parse_addr() inside reads IPv4 too.
    assert ip("[2001:db8::2]:443") == "2001:db8::2"
    assert ip("[203.0.113.9]:80") == "203.0.113.9"
    assert ip("203.0.113.9, [10.0.0.8]:1") == "203.0.113.9"
    # Without a port nginx refuses it; ours reads an IPv6 one (a kept divergence, README), and
    # nothing else: "[203.0.113.9]" is no entry.
    assert ip("[2001:db8::2]") == "2001:db8::2"
    assert ip("[203.0.113.9]") == PEER


def test_a_leading_separator_spoils_the_first_entry() -> None:
    # The scans stop at "p > xff" without testing the first byte.
    assert ip(",203.0.113.9") == PEER
    assert ip(",203.0.113.9, 10.0.0.5") == "10.0.0.5"
    assert ip(", 203.0.113.9") == "203.0.113.9"  # the comma alone is the spoiled entry
    assert ip(" ,, 203.0.113.9") == "203.0.113.9"


def test_the_client_address_reads_the_header_the_same_way() -> None:
    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    pol = TrustPolicy(s.proxy_real_ip_cidr)
    headers = [(b"x-forwarded-for", b"203.0.113.9 010.0.0.3")]
    assert client_address(PEER, s, pol, headers) == "203.0.113.9"


def test_only_trusted_hops_are_skipped() -> None:
    """Whatever the chain, the answer is the peer or an entry whose every entry to its right
    (and the peer) is a trusted hop: a client cannot choose an address past an untrusted one."""
    atoms = ["10.0.0.5", "203.0.113.9", "010.0.0.7", "fd00::1", "[fd00::2]:80", "[2001:db8::2]",
             "[203.0.113.9]", "10.0.0.9:8080", "2001:db8::1", "bogus", "", "0..0.1", "[10.0.0.8]:1"]
    rnd = random.Random(16)
    for _ in range(3000):
        chain = "".join(rnd.choice(atoms) + rnd.choice([",", " ", ", ", " , "])
                        for _ in range(rnd.randint(1, 5)))
        got = ip(chain)
        if got == PEER:
            continue
        # Every entry right of the one returned must be trusted.
        items = [t for t in chain.replace(" ", ",").split(",") if t]
        right: list[str] = []
        for t in reversed(items):
            a = _chain_address(t)
            if a == got:
                break
            right.append(t)
        assert all(POLICY.trusted(_chain_address(t)) for t in right), (chain, got)


# --- $proxy_upstream_name of requests refused before routing -------------------------------
# nginx refuses a bad head while reading it, before any phase runs: ingress-nginx's server
# block ``set $proxy_upstream_name "-";`` never ran, and the unset variable reads as ""
# (nginx.tmpl ``uninitialized_variable_warn off;`` -> ngx_http_rewrite_var():
# ``*v = ngx_http_variable_null_value;`` = ngx_http_variable("")), which the log writes as is.

def _names(record: object) -> tuple[str, str, dict[str, object]]:
    f = access_fields(record, 0.0, None)  # type: ignore[arg-type]
    line = format_line(f)
    entry = json.loads(AccessLogFormatter("json").format(
        logging.makeLogRecord({"access": f})))
    return line, f["proxy_upstream_name"], entry


def test_a_bad_header_is_logged_with_no_upstream_name() -> None:
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\x01b\r\n\r\n")
    [r] = pair.records
    line, name, entry = _names(r)
    assert r.status == 400 and name == ""
    assert " [] [] " in line, line
    assert entry["proxy_upstream_name"] == "" and entry["proxy_alternative_upstream_name"] == ""


def test_head_limits_and_the_head_timeout_are_logged_with_no_upstream_name() -> None:
    long_line = ProxyPair()
    long_line.send(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: example.test\r\n\r\n")
    big_head = ProxyPair()
    big_head.send(b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n")
    slow = ProxyPair()
    slow.send(b"GET / HTTP/1.1\r\nHost: exa")
    slow.fire(TimerKind.HEAD)
    bare_lf = ProxyPair()
    bare_lf.send(b"\nGET / HTTP/1.1\n\n")
    got = [(p.records[0].status, _names(p.records[0])[1])
           for p in (long_line, big_head, slow, bare_lf)]
    assert got == [(414, ""), (431, ""), (408, ""), (400, "")]


def test_unrouted_and_routed_requests_keep_their_names() -> None:
    # No rule: ingress-nginx's default server ``location /`` sets upstream-default-backend.
    unrouted = ProxyPair(routes=[])
    unrouted.send(b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n")
    [r] = unrouted.records
    assert r.status == 404 and _names(r)[1] == "upstream-default-backend"
    assert _names(rec())[1] == "shop-web"
    # A routed request refused later (its body timed out) keeps its backend's name.
    assert _names(rec(status=408))[1] == "shop-web"
