"""Session 33, x13: a second review of the Prometheus metrics (``ingresslib/_metrics.py``)
against ingress-nginx's collectors (socket.go, controller.go) and monitor.lua.

Defects found, each with a test below that failed before its fix:

- ``hosts_of`` (what ``serve`` gives ``Metrics.set_hosts``) left out the ``server-alias``
  names: every request made by an alias was dropped as a "host not being served". ingress-
  nginx's ``getConfiguration`` puts each server's ``Aliases`` next to its ``Hostname`` in the
  set ``SetHosts`` gets, so such a request is counted, ``host`` being the alias (nginx's
  ``$host``).

Checked and found right (no change):

- names, help, label names and order (socket.go ``requestTags`` + ``host``), default buckets
  (``DefBuckets``, ``LinearBuckets(10, 10, 10)``, ``ExponentialBuckets(10, 10, 7)``), the
  summary's 4 labels and objectives, ``le`` written as Go writes it;
- one record per request (the auth subrequest, the mirror and the custom-http-errors fetch make
  none of their own: the main request is counted once, with the status the client got);
- heads refused before a location (phase ``"head"``: 400/408/414/431, plain HTTP on the TLS
  port, the www twin's redirect) and server-level answers (app-root, block-user-agents,
  client-certificate refusals) are not counted; the 413 of a Content-Length is, with empty
  location labels (the log phase of the chosen location, whose rewrite phase never ran);
- status as nginx prints it (``%03ui``: 499, 408, ``000``), the class with
  ``report_status_classes``; unknown methods as ``OTHER``;
- ``path`` the rule path (``/`` for a rule without one), ``ingress``/``namespace``/``service``
  the main Ingress and Service when the canary served, ``canary`` the canary upstream name;
- an unknown Host is not counted once the served hosts are known (socket.go "Skipping metric
  for host not being served"), a request without Host counts under ``_``;
- ``set_ingresses`` drops the series of Ingresses no longer served (``RemoveMetrics``);
- the last try's connect/header/response times after retries (a known, documented
  difference: monitor.lua's ``tonumber`` reads no time from ``"0.004, 0.002"``).
"""

from __future__ import annotations

import ingresslib
from ingresslib._metrics import hosts_of

from _records import rec

P = "nginx.ingress.kubernetes.io/"
N = "nginx_ingress_controller"


def _ingress(name: str, host: str | None, annotations: dict[str, str],
             stamp: str = "2024-01-01T00:00:00Z") -> str:
    ann = "".join(f"\n    {k}: {v!r}" for k, v in annotations.items())
    host_line = f"host: {host}\n    " if host else ""
    return (
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        f"metadata:\n  name: {name}\n  namespace: shop\n  creationTimestamp: '{stamp}'\n"
        f"  annotations:{ann or ' {}'}\n"
        f"spec:\n  rules:\n  - {host_line}http:\n      paths:\n"
        "      - {path: /, pathType: Prefix, backend: {service: {name: web, port: "
        "{number: 80}}}}\n---\n")


def _requests(m: ingresslib.Metrics, host: str) -> float:
    total = 0.0
    for line in m.render().decode().splitlines():
        if line.startswith(f"{N}_requests{{") and f'host="{host}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_server_alias_names_are_served_hosts() -> None:
    # controller.go getConfiguration: "for _, alias := range server.Aliases { ...
    # hosts.Insert(alias) }": SetHosts gets the aliases too (the host-less rules' server,
    # "_", has its own).
    res = ingresslib.parse_manifests(
        _ingress("a", "a.test", {P + "server-alias": "b.test, *.c.test"})
        + _ingress("d", None, {P + "server-alias": "d.test"}))
    assert hosts_of(res) == {"a.test", "b.test", "*.c.test", "d.test"}


def test_a_request_by_a_server_alias_is_counted_under_the_alias() -> None:
    res = ingresslib.parse_manifests(_ingress("a", "a.test", {P + "server-alias": "b.test"}))
    router = ingresslib.Router(res)
    m = ingresslib.Metrics()
    m.set_hosts(hosts_of(res, router.table.served))
    m.observe(rec(host="b.test", ingress="shop/a", rule_path="/"))
    m.observe(rec(host="a.test", ingress="shop/a", rule_path="/"))
    m.observe(rec(host="x.test", ingress=None, rule_path=None, service=None))
    assert _requests(m, "b.test") == 1
    assert _requests(m, "a.test") == 1
    assert _requests(m, "x.test") == 0


def test_the_aliases_of_the_older_ingress_win_and_canaries_give_none() -> None:
    # createServers: the first Ingress (oldest first) with aliases sets a server's aliases; a
    # canary makes no server ("is marked as Canary, ignoring").
    res = ingresslib.parse_manifests(
        _ingress("new", "a.test", {P + "server-alias": "new.test"}, "2024-02-01T00:00:00Z")
        + _ingress("old", "a.test", {P + "server-alias": "old.test"}, "2024-01-01T00:00:00Z")
        + _ingress("can", "a.test", {P + "canary": "true", P + "canary-weight": "10",
                                     P + "server-alias": "canary.test"}))
    assert hosts_of(res) == {"a.test", "old.test"}


def test_the_embedding_example_counts_alias_requests_too() -> None:
    # examples/embedded_proxy.py (and docs/observability.md) build set_hosts' names by hand:
    # the same aliases as serve's hosts_of.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "embedded_proxy.py"
    spec = importlib.util.spec_from_file_location("_x13_embedded_proxy", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    res = ingresslib.parse_manifests(_ingress("a", "a.test", {P + "server-alias": "b.test"}))
    router = ingresslib.Router(res)
    assert example._hosts(router) == {"a.test", "b.test"} == hosts_of(res, router.table.served)


def test_the_core_record_of_an_alias_request_is_counted_under_the_alias() -> None:
    # End to end: the proxy core's record of a request made by the alias, counted by a Metrics
    # given the hosts as serve gives them.
    from _proxy_harness import WEB_SERVICE_YAML, ingress_yaml, routed_pair

    docs = ingress_yaml("a", "a.test", {P + "server-alias": "b.test"})
    p = routed_pair(docs)
    p.send(b"GET /x HTTP/1.1\r\nHost: b.test\r\n\r\n")
    assert [r.host for r in p.records] == ["b.test"]
    res = ingresslib.parse_manifests(docs + WEB_SERVICE_YAML)
    m = ingresslib.Metrics()
    m.set_hosts(hosts_of(res, ingresslib.Router(res).table.served))
    m.observe(p.records[0])
    text = m.render().decode()
    assert (f'{N}_requests{{canary="",host="b.test",ingress="a",method="GET",'
            f'namespace="default",path="/",service="web",status="200"}} 1') in text
