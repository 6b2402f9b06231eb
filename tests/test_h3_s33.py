"""Session 33, h3: CIDR lists as ingress-nginx writes them into nginx.conf, and how each nginx
module that reads them matches an IPv4-mapped IPv6 client (``::ffff:a.b.c.d``).

The oracles below are written from the sources, independently of ``proxy/_access.py``:

- Go (golang/go src/net/ip.go): ``ParseCIDR`` masks the address with a mask of the address's
  own length ("m := CIDRMask(n, 8*iplen); return ip, &IPNet{IP: ip.Mask(m), Mask: m}"; an
  IPv4-mapped address is 16 bytes long, its mask too), ``IPNet.String`` goes through
  ``networkNumberAndMask`` ("if ip = n.IP.To4() ... case IPv6len: if len(ip) == IPv4len { m =
  m[12:] }") and ``IP.String`` writes an IPv4-mapped address in dotted decimal. ingress-nginx's
  internal/net/ipnet.go ``ParseIPNets`` (ParseCIDR, else ParseIP) then writes these strings.
- nginx: ``ngx_http_access_handler`` checks a mapped client against the IPv4 rules when there
  are any ("if (alcf->rules && IN6_IS_ADDR_V4MAPPED(...))"), else the IPv6 ones, first match
  deciding; ``ngx_http_geo_cidr_variable`` (limit-allowlist's ``geo $remote_addr``) looks a
  mapped client up in the IPv4 tree, always.
- lua-resty-ipmatcher ``_M.match`` (global-rate-limit-ignored-cidrs, global_throttle.lua
  ``should_ignore_request``): "local inet_ipv4 = parse_ipv4(ip)" is ``inet_pton(AF_INET, ...)``,
  which refuses "::ffff:10.1.2.3"; the text is then matched as IPv6, against IPv6 entries only.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given, strategies as st

from ingresslib import ValidationError
from ingresslib._config import parse_config_data
from ingresslib._tcp_proxy import TCPServices
from ingresslib.proxy._access import SourceRanges, build_access, parse_source_ranges
from ingresslib.proxy._globalratelimit import GlobalRateLimit
from ingresslib.proxy._headers import TrustPolicy
from ingresslib.proxy._ratelimit import RateLimit
from ingresslib.proxy._settings import ProxySettings

_V4IN6 = bytes(10) + b"\xff\xff"


# -- Go's rules, on bytes ----------------------------------------------------------------------

def _go_mask(ip: bytes, mask: bytes) -> bytes:
    # (IP).Mask, for ParseCIDR's case: ip and mask of the same length.
    return bytes(a & b for a, b in zip(ip, mask))


def _go_cidr_mask(ones: int, bits: int) -> bytes:
    value = ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1)
    return value.to_bytes(bits // 8, "big")


def _go_to4(ip: bytes) -> bytes | None:
    if len(ip) == 4:
        return ip
    return ip[12:] if ip[:12] == _V4IN6 else None


def _go_ip_string(ip: bytes) -> str:
    v4 = _go_to4(ip)
    if v4 is not None:
        return ".".join(str(b) for b in v4)
    return str(ipaddress.IPv6Address(ip))


def _go_written(spec: str) -> str:
    """What ``ParseIPNets`` + ``String()`` writes for one valid element."""
    text, slash, ones = spec.partition("/")
    addr = ipaddress.ip_address(text)
    ip = addr.packed  # 4 bytes for dotted decimal, 16 for any IPv6 form (mapped ones too)
    if not slash:
        return _go_ip_string(ip)  # ParseIP(spec).String()
    mask = _go_cidr_mask(int(ones), 8 * len(ip))
    net_ip = _go_mask(ip, mask)
    # networkNumberAndMask: the 4-byte form when there is one, then the mask's last 4 bytes.
    v4 = _go_to4(net_ip)
    if v4 is not None and len(mask) == 16:
        net_ip, mask = v4, mask[12:]
    ones_out = bin(int.from_bytes(mask, "big")).count("1")
    return f"{_go_ip_string(net_ip)}/{ones_out}"


# -- nginx's rule lists ------------------------------------------------------------------------

def _nginx_rules(written: list[tuple[str, bool]]) -> list[tuple[int, int, int, bool]]:
    """(family, network, prefix, deny) per line, as ngx_ptocidr reads the text."""
    out: list[tuple[int, int, int, bool]] = []
    for text, deny in written:
        net = ipaddress.ip_network(text, strict=False)
        out.append((net.version, int(net.network_address), net.prefixlen, deny))
    return out


def _inside(addr: int, bits: int, net: int, prefix: int) -> bool:
    return addr >> (bits - prefix) == net >> (bits - prefix) if prefix else True


def _client(ip: str) -> tuple[int, int, bool]:
    """(family, integer, mapped)."""
    a = ipaddress.ip_address(ip)
    mapped = isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None
    return a.version, int(a), mapped


def _access_verdict(rules: list[tuple[int, int, int, bool]], ip: str) -> bool:
    """ngx_http_access_handler: True when denied."""
    family, addr, mapped = _client(ip)
    if mapped and any(r[0] == 4 for r in rules):
        family, addr = 4, addr & 0xFFFFFFFF
    bits = 32 if family == 4 else 128
    for fam, net, prefix, deny in rules:
        if fam == family and _inside(addr, bits, net, prefix):
            return deny
    return False


def _geo_member(rules: list[tuple[int, int, int, bool]], ip: str) -> bool:
    """ngx_http_geo_cidr_variable with every entry's value 1, default 0."""
    family, addr, mapped = _client(ip)
    if mapped:
        family, addr = 4, addr & 0xFFFFFFFF
    bits = 32 if family == 4 else 128
    return any(fam == family and _inside(addr, bits, net, prefix)
               for fam, net, prefix, _ in rules)


def _ipmatcher_member(rules: list[tuple[int, int, int, bool]], ip: str) -> bool:
    """lua-resty-ipmatcher ``match``: dotted decimal is IPv4, any other text IPv6."""
    family, addr, _ = _client(ip)
    bits = 32 if family == 4 else 128
    return any(fam == family and _inside(addr, bits, net, prefix)
               for fam, net, prefix, _ in rules)


# -- strategies --------------------------------------------------------------------------------

_v4_int = st.integers(0, (1 << 32) - 1)


@st.composite
def _spec(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["v4", "v6", "mapped", "mapped", "zero-v6"]))
    if kind == "v4":
        text, bits = str(ipaddress.IPv4Address(draw(_v4_int))), 32
    elif kind == "v6":
        text, bits = str(ipaddress.IPv6Address(draw(st.integers(0, (1 << 128) - 1)))), 128
    elif kind == "mapped":
        text, bits = "::ffff:" + str(ipaddress.IPv4Address(draw(_v4_int))), 128
    else:  # low addresses: prefixes under 96 covering ::ffff:0:0/96
        text, bits = str(ipaddress.IPv6Address(draw(st.integers(0, (1 << 48) - 1)))), 128
    if draw(st.booleans()):
        return text
    return f"{text}/{draw(st.integers(0, bits))}"


@st.composite
def _client_ip(draw: st.DrawFn) -> str:
    v4 = str(ipaddress.IPv4Address(draw(st.sampled_from(
        [0x0A000001, 0x0A010203, 0xC0A80001, 0, 0xFFFFFFFF]) | _v4_int)))
    kind = draw(st.sampled_from(["v4", "mapped", "v6"]))
    if kind == "v4":
        return v4
    if kind == "mapped":
        return "::ffff:" + v4
    return str(ipaddress.IPv6Address(draw(st.integers(0, (1 << 128) - 1))))


# -- the lists as ingress-nginx writes them ----------------------------------------------------

def test_go_writes_a_mapped_network_as_ipv4() -> None:
    assert parse_source_ranges("::ffff:10.0.0.0/104", annotation=True) == ("10.0.0.0/8",)
    assert _go_written("::ffff:10.0.0.0/104") == "10.0.0.0/8"
    # Under /96 the mask clears ::ffff, so no IPv4 form is left (nothing wider than 0.0.0.0/0).
    assert _go_written("::ffff:10.0.0.0/95") == "::fffe:0:0/95"
    assert parse_source_ranges("::ffff:10.0.0.0/95", annotation=True) == ("::fffe:0:0/95",)
    assert parse_source_ranges("::ffff:10.0.0.0/96", annotation=True) == ("0.0.0.0/0",)


@given(st.lists(_spec(), min_size=1, max_size=4))
def test_annotation_lists_are_what_go_writes(specs: list[str]) -> None:
    ours = parse_source_ranges(",".join(specs), annotation=True)
    assert [ipaddress.ip_network(o) for o in ours] == [
        ipaddress.ip_network(_go_written(s)) for s in specs]


# -- membership, per module --------------------------------------------------------------------

@given(st.lists(_spec(), max_size=3), st.lists(_spec(), max_size=3), st.booleans(),
       _client_ip())
def test_access_lists_match_as_nginx_access_module(deny: list[str], allow: list[str],
                                                   deny_all: bool, ip: str) -> None:
    # nginx.tmpl: the denylist's "deny" lines, the allowlist's "allow" lines, "deny all;".
    written = [(_go_written(s), True) for s in deny] + [(_go_written(s), False) for s in allow]
    ranges = SourceRanges()
    ranges.add(parse_source_ranges(",".join(deny), annotation=True) if deny else (), True)
    ranges.add(parse_source_ranges(",".join(allow), annotation=True) if allow else (), False)
    rules = _nginx_rules(written)
    if deny_all:
        ranges.deny_all()
        rules += [(4, 0, 0, True), (6, 0, 0, True)]
    assert ranges.refuses(ip) == _access_verdict(rules, ip)


def test_limit_allowlist_mapped_client_is_looked_up_as_ipv4() -> None:
    # geo: "::/0 1;" covers IPv6 clients; a mapped one is looked up in the IPv4 tree, where
    # only "default 0" is: it is limited.
    limit = RateLimit(zone="z", rps=1, allowlist=parse_source_ranges("::/0", annotation=True))
    assert limit.exempt("2001:db8::1")
    assert not limit.exempt("::ffff:10.1.2.3")
    limit = RateLimit(zone="z", rps=1, allowlist=("10.0.0.0/8",))
    assert limit.exempt("::ffff:10.1.2.3") and limit.exempt("10.1.2.3")


@given(st.lists(_spec(), min_size=1, max_size=4), _client_ip())
def test_limit_allowlist_matches_as_nginx_geo(specs: list[str], ip: str) -> None:
    limit = RateLimit(zone="z", rps=1,
                      allowlist=parse_source_ranges(",".join(specs), annotation=True))
    rules = _nginx_rules([(_go_written(s), False) for s in specs])
    assert limit.exempt(ip) == _geo_member(rules, ip)


def test_ignored_cidrs_mapped_client_is_matched_as_ipv6() -> None:
    # resty-ipmatcher: "::ffff:10.1.2.3" is not IPv4 text, and no IPv6 entry holds it.
    limit = GlobalRateLimit(namespace="ns", limit=1, window=60,
                            ignored_cidrs=parse_source_ranges("10.0.0.0/8", annotation=True))
    assert limit.ignored("10.1.2.3")
    assert not limit.ignored("::ffff:10.1.2.3")
    limit = GlobalRateLimit(namespace="ns", limit=1, window=60, ignored_cidrs=("::/0",))
    assert limit.ignored("::ffff:10.1.2.3") and not limit.ignored("10.1.2.3")


@given(st.lists(_spec(), min_size=1, max_size=4), _client_ip())
def test_ignored_cidrs_match_as_resty_ipmatcher(specs: list[str], ip: str) -> None:
    limit = GlobalRateLimit(namespace="ns", limit=1, window=60,
                            ignored_cidrs=parse_source_ranges(",".join(specs), annotation=True))
    rules = _nginx_rules([(_go_written(s), False) for s in specs])
    assert limit.ignored(ip) == _ipmatcher_member(rules, ip)


# -- proxy-real-ip-cidr for TCP services -------------------------------------------------------

def test_tcp_services_trust_a_mapped_peer_as_ipv4() -> None:
    # nginx stream's realip: ngx_cidr_match() compares ::ffff:a.b.c.d as a.b.c.d, as the HTTP
    # proxy's TrustPolicy does.
    async def verdicts() -> tuple[bool, ...]:
        services = TCPServices(ProxySettings(enable_real_ip=True,
                                             proxy_real_ip_cidr=("10.0.0.0/8",)))
        return tuple(services.trusted(peer) for peer in (
            "10.1.2.3", "::ffff:10.1.2.3", "::ffff:11.1.2.3", "::a01:203", "garbage"))

    assert asyncio.run(verdicts()) == (True, True, False, False, False)


def test_proxy_real_ip_cidr_reads_as_nginx_set_real_ip_from() -> None:
    # Written as is into "set_real_ip_from" lines; ngx_ptocidr takes a decimal prefix only
    # (a netmask or a zone is taken for a host name: the reload fails), as for block-cidrs.
    for bad in ("10.0.0.0/255.0.0.0", "10.0.0.0/0.255.255.255", "fe80::%eth0/64"):
        with pytest.raises(ValidationError) as ei:
            parse_config_data({"proxy-real-ip-cidr": bad})
        assert [e.field for e in ei.value.errors] == ["data.proxy-real-ip-cidr"]
    cfg = parse_config_data({"proxy-real-ip-cidr": "10.0.0.1/8, ::ffff:10.0.0.0/104,"})
    assert cfg.settings.proxy_real_ip_cidr == ("10.0.0.0/8", "::ffff:10.0.0.0/104")
    # ngx_cidr_match compares a mapped peer as IPv4: the IPv6 rule ::ffff:10.0.0.0/104 (kept
    # IPv6: nginx reads the line, not Go) meets no peer at all.
    only_mapped = TrustPolicy(("::ffff:10.0.0.0/104",))
    assert not only_mapped.trusted("10.1.2.3") and not only_mapped.trusted("::ffff:10.1.2.3")


# -- the ConfigMap's lists: nginx reads their lines --------------------------------------------

def test_configmap_lists_read_as_nginx_reads_their_lines() -> None:
    # Written as given ("deny {{ trimSpace $ip }};"); ngx_ptocidr -> ngx_inet_addr reads
    # decimal octets, leading zeros and all (010.0.0.1 is 10.0.0.1), ngx_atoi the prefix.
    cfg = parse_config_data({"block-cidrs": "010.0.0.1, 192.168.0.0/016",
                             "proxy-real-ip-cidr": "010.0.0.0/8"})
    assert cfg.settings.block_cidrs == ("10.0.0.1/32", "192.168.0.0/16")
    assert cfg.settings.proxy_real_ip_cidr == ("10.0.0.0/8",)
    access = build_access(None, ProxySettings(block_cidrs=("010.0.0.1",)).block_cidrs, (), ())
    assert access is not None
    assert access.status("10.0.0.1") == 403 and access.status("8.0.0.1") == 0
    # 255.255.255.255 is ngx_inet_addr's INADDR_NONE: "invalid parameter", the reload fails.
    with pytest.raises(ValidationError):
        parse_config_data({"block-cidrs": "255.255.255.255"})
    # An annotation is Go's to read first (ParseCIDR/ParseIP refuse leading zeros).
    with pytest.raises(ValueError):
        parse_source_ranges("010.0.0.1", annotation=True)
