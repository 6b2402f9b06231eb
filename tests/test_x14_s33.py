"""Session 33, x14: a second engineer's review of round 3 (x12 ``_OwnerDeniable``, x13 the
metrics' alias hosts, h3 CIDR lists as ingress-nginx reads them), nginx / ingress-nginx as
the spec.

Defects found (each test below failed before the fix):

- h3 left: ``ProxySettings(proxy_real_ip_cidr=...)`` set from Python was read by
  ``ipaddress`` while the ConfigMap's ``proxy-real-ip-cidr`` is read as nginx's
  ``set_real_ip_from`` (ngx_ptocidr): a netmask (``10.0.0.0/255.0.0.0``), a hostmask or a
  zone (``fe80::1%eth0``) was accepted from Python and refused from the ConfigMap, and
  ``010.0.0.1`` (10.0.0.1 to ngx_inet_addr) the other way round. Now the settings check it
  with the lists' parser (``parse_source_ranges``) and ``TrustPolicy`` reads each element as
  the access lists do (``_rule_network``).
- The ConfigMap's lists given from Python (``whitelist_source_range``,
  ``denylist_source_range``, ``block_cidrs``, ``proxy_real_ip_cidr``) were checked as one
  comma-joined string: an element holding a comma (``"10.0.0.0/8,10.1.0.0/16"``) passed
  ``ProxySettings`` and then failed ``SourceRanges.add`` when the first table was built
  (a ValueError naming no setting). Now each element is checked alone and named.

Checked and found right (no change):

- x12 ``_OwnerDeniable``: the upstream TLS of the default backend is its own (with the host's
  server-level ``proxy_ssl_*``, as before round 3), never the owner's; the pooling key and the
  driver's SSLContext come from ``config()[0]``, unchanged; ``ProxySSL`` compares by identity
  and the options are cached per Match (one wrapper per table); a Secret fixed later is read
  per request (x12's test); explain of that path shows the host's server-level proxy-ssl as it
  did before; an owner whose proxy-ssl-* lacks a secret writes no ProxySSL (no wrapper).
- x13 ``hosts_of``: aliases come from ``alias_servers`` over the non-canary Ingresses oldest
  first, as the table keeps them (a later Ingress's aliases for the same server dropped, an
  alias equal to a rule host is that host); a wildcard alias is a name of its own, as a
  wildcard rule host (socket.go ``hosts.Has`` is exact); ``set_hosts`` then drops the
  ``ingress=""`` series of a removed alias, as of a removed host; serve's file reload and
  ``--kubernetes`` both call ``hosts_of(res, served)``.
- h3: an invalid ``proxy-real-ip-cidr`` ConfigMap edit is rejected whole and the settings in
  use kept (``_serve_reload``: "ConfigMap ... rejected; keeping the settings in use");
  the refused element is named ("'10.0.0.0/255.0.0.0' is not a valid IP address or CIDR");
  a request through the core with a whitelist parses no CIDR per request (``SourceRanges``
  built with the table, verdicts cached per address in ``Access``).
"""

from __future__ import annotations

import pytest

from ingresslib._config import parse_config_data
from ingresslib.proxy._headers import TrustPolicy
from ingresslib.proxy._settings import ProxySettings

_LISTS = ("whitelist_source_range", "denylist_source_range", "block_cidrs",
          "proxy_real_ip_cidr")


@pytest.mark.parametrize("bad", ["10.0.0.0/255.0.0.0", "10.0.0.0/0.255.255.255",
                                 "fe80::1%eth0", "fe80::%eth0/64", "255.255.255.255"])
def test_proxy_real_ip_cidr_from_python_refused_as_the_configmap_refuses(bad: str) -> None:
    # nginx's set_real_ip_from reads ngx_ptocidr: a decimal prefix only, no zone,
    # INADDR_NONE no address; the ConfigMap refuses these (test_h3_s33), Python must too.
    with pytest.raises(ValueError) as ei:
        parse_config_data({"proxy-real-ip-cidr": bad})
    with pytest.raises(ValueError) as ei:
        ProxySettings(proxy_real_ip_cidr=(bad,))
    assert str(ei.value).startswith("proxy_real_ip_cidr: ") and repr(bad) in str(ei.value)


def test_proxy_real_ip_cidr_from_python_read_as_nginx_reads_it() -> None:
    # ngx_inet_addr: 010.0.0.1 is 10.0.0.1 (decimal octets), as the ConfigMap reads it.
    cfg = parse_config_data({"proxy-real-ip-cidr": "010.0.0.0/8"})
    assert TrustPolicy(cfg.settings.proxy_real_ip_cidr).trusted("10.1.2.3")
    settings = ProxySettings(proxy_real_ip_cidr=("010.0.0.0/8", " 192.168.0.1 "))
    policy = TrustPolicy(settings.proxy_real_ip_cidr)
    assert [policy.trusted(ip) for ip in ("10.1.2.3", "::ffff:10.1.2.3", "8.1.2.3",
                                          "192.168.0.1", "192.168.0.2")] == [
        True, True, False, True, False]


@pytest.mark.parametrize("name", _LISTS)
def test_an_element_holding_a_comma_is_refused_naming_the_setting(name: str) -> None:
    # A tuple's element is one nginx parameter ("deny 10.0.0.0/8,10.1.0.0/16;" fails the
    # reload); it used to pass the check (made on the joined list) and fail the first table.
    with pytest.raises(ValueError) as ei:
        ProxySettings(**{name: ("10.0.0.0/8,10.1.0.0/16",)})
    assert str(ei.value).startswith(f"{name}: ")
    assert ProxySettings(**{name: ("10.0.0.0/8", "10.1.0.0/16")})
