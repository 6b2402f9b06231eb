"""IP addresses and networks written as text the same way on every Python.

``str(IPv6Address)`` of an IPv4-mapped address changed in Python 3.13 (``::ffff:a00:1`` up to
3.12, ``::ffff:10.0.0.1`` from 3.13, RFC 5952 §5: "the mixed notation is RECOMMENDED" for
such addresses). The text ingresslib derives from an address (an endpoint written
canonically, a source range, a trusted CIDR, explain's client address) must not depend on the
interpreter, so it is written here in RFC 5952's mixed form, which is also what Go's
``netip.Addr.String`` writes.
"""

from __future__ import annotations

import ipaddress

__all__ = ["ip_text", "network_text", "host_port"]


def ip_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None \
            and ip.scope_id is None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def network_text(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    if isinstance(net, ipaddress.IPv6Network):
        return f"{ip_text(net.network_address)}/{net.prefixlen}"
    return str(net)


def host_port(host: str, port: int) -> str:
    """``HOST:PORT`` as ``--listen`` takes it and nginx writes ``$upstream_addr``: an IPv6
    address in brackets (``[::1]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
