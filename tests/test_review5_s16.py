"""Review of session 16's realip / access-log change (V16f)."""

from __future__ import annotations

from _proxy_harness import ProxyPair

from ingresslib._accesslog import upstream_names
from ingresslib.proxy._headers import TrustPolicy, client_address, client_ip_from_chain
from ingresslib.proxy._settings import ProxySettings


# --- a long run of digits in an X-Forwarded-For entry --------------------------------------
# ngx_inet_addr() and ngx_atoi() read any number of leading zeros and refuse a value past
# their bound; ``int()`` of more than 4300 digits raises ValueError, which escaped
# ``client_address`` (the proxy core and IngressASGI both call it) as an exception.

_POLICY = TrustPolicy(["10.0.0.0/8"])
_ZEROS = "0" * 5000


def test_long_octets_and_ports_are_read_as_nginx_reads_them() -> None:
    ip = lambda chain: client_ip_from_chain(chain, "10.0.0.1", _POLICY)  # noqa: E731
    assert ip("1" * 5000 + ".2.3.4") == "10.0.0.1"  # octet > 255: not an address
    assert ip(_ZEROS + "203.0.113.9") == "203.0.113.9"  # leading zeros: decimal 203
    assert ip("203.0.113.9:" + _ZEROS + "443") == "203.0.113.9"
    assert ip("203.0.113.9:" + "9" * 5000) == "10.0.0.1"  # port > 65535
    assert ip("203.0.113.9:" + _ZEROS) == "10.0.0.1"  # port 0
    assert ip("[2001:db8::1]:" + "1" * 5000) == "10.0.0.1"
    assert ip("[2001:db8::1]:" + _ZEROS + "8") == "2001:db8::1"


def test_a_long_entry_reaches_the_proxy_core_without_an_exception() -> None:
    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    pair = ProxyPair(settings=s, peer=("10.0.0.9", 5000))
    pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 203.0.113.9, "
              + b"1" * 5000 + b".1.1.1\r\n\r\n")
    assert pair.router.calls[-1][3] == "10.0.0.9"  # the walk stopped at the bad entry
    assert client_address("10.0.0.9", s, TrustPolicy(s.proxy_real_ip_cidr),
                          [(b"x-forwarded-for", (_ZEROS + "203.0.113.9").encode())]) \
        == "203.0.113.9"


def test_connect_and_trace_refused_with_the_head_are_logged_with_no_upstream_name() -> None:
    # nginx refuses both in ngx_http_process_request_header(), before any phase ran
    # ingress-nginx's ``set $proxy_upstream_name``: the same empty name as a bad head.
    for head in (b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
                 b"TRACE / HTTP/1.1\r\nHost: example.test\r\n\r\n"):
        pair = ProxyPair()
        pair.send(head)
        [r] = pair.records
        assert r.status == 405 and upstream_names(r) == ("", ""), head
