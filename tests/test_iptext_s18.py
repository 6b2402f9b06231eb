"""IPv4-mapped addresses are written the same way on every Python (RFC 5952 §5 mixed form;
Python 3.13 changed ``str(IPv6Address)`` for them, and two tests pinned the 3.12 form)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from ingresslib._iptext import ip_text, network_text


def test_mapped_addresses_in_the_mixed_form() -> None:
    assert ip_text(ipaddress.ip_address("::ffff:a00:1")) == "::ffff:10.0.0.1"
    assert network_text(ipaddress.ip_network("::ffff:a00:0/104")) == "::ffff:10.0.0.0/104"
    assert ip_text(ipaddress.ip_address("fd00::1")) == "fd00::1"
    assert ip_text(ipaddress.ip_address("10.0.0.1")) == "10.0.0.1"
    assert network_text(ipaddress.ip_network("10.0.0.0/8")) == "10.0.0.0/8"


@given(st.integers(0, 2**128 - 1))
def test_the_text_names_the_same_address(n: int) -> None:
    ip = ipaddress.IPv6Address(n)
    assert ipaddress.ip_address(ip_text(ip)) == ip
    # Python's text but for mapped and IPv4-compatible addresses (::1.2.3.4 as nginx's
    # ngx_inet6_ntop writes it: one writer for the proxy and explain, session 24)
    if ip.ipv4_mapped is None and ip.packed[:10] != bytes(10):
        assert ip_text(ip) == str(ip)
