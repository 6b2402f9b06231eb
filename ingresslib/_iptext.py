"""IP addresses and networks written as text the same way on every Python.

``str(IPv6Address)`` of an IPv4-mapped address changed in Python 3.13 (``::ffff:a00:1`` up to
3.12, ``::ffff:10.0.0.1`` from 3.13, RFC 5952 §5: "the mixed notation is RECOMMENDED" for
such addresses). The text ingresslib derives from an address (an endpoint written
canonically, a source range, a trusted CIDR, explain's client address, the proxy's forwarded
client address) must not depend on the interpreter, so it is written here one way, as nginx's
``ngx_inet6_ntop`` writes it (:func:`ipv6_text`; nginx's ``$remote_addr`` and
``$upstream_addr``): RFC 5952's form, with the mixed notation for IPv4-mapped addresses, as
Go's ``netip.Addr.String`` writes, and also for the IPv4-compatible ones (``::1.2.3.4``, where
Python and Go write ``::102:304``).
"""

from __future__ import annotations

import ipaddress

__all__ = ["ip_text", "ipv6_text", "network_text", "host_port"]


def ipv6_text(p: bytes) -> str:
    """The 16 bytes ``p`` of an IPv6 address as nginx ngx_inet6_ntop() prints them: lower-case
    hex without leading zeros, the longest run of two or more zero groups (the first of equal
    ones) written ``::``, and the last four bytes in dotted decimal after a zero run that
    starts the address and is six groups long, or five followed by ``ffff`` (``::ffff:1.2.3.4``),
    or seven unless the last group is ``1`` or its first byte 0: "if ((max == 5 && p[10] ==
    0xff && p[11] == 0xff) || (max == 6) || (max == 7 && p[14] != 0 && p[15] != 1)) { n = 12;
    }". Python's ``str(IPv6Address)`` writes ``::ffff:102:304`` (before Python 3.13)."""
    words = [p[i] << 8 | p[i + 1] for i in range(0, 16, 2)]
    zero, longest, run, start = -1, 1, 0, -1
    for i, word in enumerate(words):
        if word:
            if longest < run:
                zero, longest = start, run
            run = 0
        else:
            if run == 0:
                start = i
            run += 1
    if longest < run:
        zero, longest = start, run
    n = 8
    out = ""
    if zero == 0:
        if ((longest == 5 and words[5] == 0xFFFF) or longest == 6
                or (longest == 7 and p[14] != 0 and p[15] != 1)):
            n = 6
        out = ":"
    i = 0
    while i < n:
        if i == zero:
            out += ":"
            i += longest
            continue
        out += "%x:" % words[i] if i < 7 else "%x" % words[i]
        i += 1
    if n == 6:
        out += "%d.%d.%d.%d" % (p[12], p[13], p[14], p[15])
    return out


def ip_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``ip`` as text: IPv4 dotted decimal, IPv6 as :func:`ipv6_text` (a zone, ``%eth0``,
    after it as ``ipaddress`` keeps it)."""
    if isinstance(ip, ipaddress.IPv6Address):
        text = ipv6_text(ip.packed)
        return text if ip.scope_id is None else f"{text}%{ip.scope_id}"
    return str(ip)


def network_text(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    if isinstance(net, ipaddress.IPv6Network):
        return f"{ip_text(net.network_address)}/{net.prefixlen}"
    return str(net)


def host_port(host: str, port: int) -> str:
    """``HOST:PORT`` as ``--listen`` takes it and nginx writes ``$upstream_addr``: an IPv6
    address in brackets (``[::1]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
