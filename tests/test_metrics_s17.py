"""Metrics: the ``max_hosts`` bound after Ingresses are removed (session 17)."""

from __future__ import annotations

from ingresslib._metrics import Metrics

from _records import rec

P = "nginx_ingress_controller"


def _hosts(m: Metrics) -> set[str]:
    hosts = set()
    for line in m.render().decode().splitlines():
        if line.startswith(f"{P}_requests{{"):
            hosts.add(line.split('host="', 1)[1].split('"', 1)[0])
    return hosts


def test_hosts_of_removed_ingresses_free_the_host_bound() -> None:
    # Without set_hosts an embedding labels the first ``max_hosts`` Host values; set_ingresses
    # drops the series of Ingresses a reload removed, and their hosts must stop counting
    # against the bound, or preview environments coming and going (one Ingress and host per
    # pull request) use it up and every later host is counted as host="".
    m = Metrics(max_hosts=2)
    m.observe(rec(host="web.shop.test", ingress="shop/web", rule_path="/"))
    m.observe(rec(host="pr1.shop.test", ingress="shop/pr1", rule_path="/"))
    m.set_ingresses(["shop/web"])  # pr1 merged, its Ingress deleted
    m.observe(rec(host="pr2.shop.test", ingress="shop/pr2", rule_path="/"))
    assert _hosts(m) == {"web.shop.test", "pr2.shop.test"}
    # The bound still holds over what is served now.
    m.observe(rec(host="pr3.shop.test", ingress="shop/pr3", rule_path="/"))
    assert _hosts(m) == {"web.shop.test", "pr2.shop.test", ""}


def test_a_host_kept_by_another_ingress_still_counts() -> None:
    m = Metrics(max_hosts=2)
    m.observe(rec(host="shop.test", ingress="shop/web", rule_path="/"))
    m.observe(rec(host="shop.test", ingress="shop/api", rule_path="/api"))
    m.observe(rec(host="pr1.shop.test", ingress="shop/pr1", rule_path="/"))
    m.set_ingresses(["shop/api", "shop/pr1"])
    m.observe(rec(host="pr2.shop.test", ingress="shop/pr2", rule_path="/"))
    assert _hosts(m) == {"shop.test", "pr1.shop.test", ""}
