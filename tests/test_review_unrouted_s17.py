"""Review of the unrouted 413 (N17) and of the metrics' phases (M17), session 17 (R17k).

Guards for what the review checked and found right:

- A catch-all Ingress (``spec.defaultBackend``, no rules) is the default server's
  ``location /`` in ingress-nginx (controller.go ``createServers``: "special "catch all" case,
  Ingress with a backend but no rule" ... ``locationApplyAnnotations(defLoc, anns)``), so its
  own proxy-body-size applies there: a request for an unknown host (or none) is routed to it,
  never refused by the settings' limit as an unrouted request.
- An Ingress of host-less rules does not own the default server (``createServers`` creates
  ``_`` first: "if _, ok := servers[host]; ok { continue }"): a path none of its rules
  covers takes the default server's limit (the settings'), its own paths its own.
- Metrics: every ordinary proxied request (200, 502, 504, 499, 101, the default backend's
  404) is answered in a location (``phase == "location"``) and counted with its labels; the
  unrouted 413 is counted with the location labels empty, as the find_config phase leaves
  nginx.tmpl's ``set $namespace ...`` unrun.
"""

from __future__ import annotations

import h11

from ingresslib._accesslog import upstream_names
from ingresslib._metrics import Metrics
from tests._proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml, routed_pair, status_of

P = "nginx.ingress.kubernetes.io/"

_SERVICE = WEB_SERVICE_YAML

_CATCH_ALL = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: catch-all
  namespace: default
  creationTimestamp: '2023-01-01T00:00:00Z'
  annotations: {'nginx.ingress.kubernetes.io/proxy-body-size': '0'}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""

_BIG = b"Content-Length: 2000000\r\n\r\n"  # over the settings' proxy-body-size, 1 MiB


def _pair(*docs: str) -> ProxyPair:
    return routed_pair(*docs)


def test_catch_all_ingress_body_size_applies_to_unknown_hosts() -> None:
    """The catch-all's proxy-body-size 0 (no limit): a large declared body for an unknown
    host, or without Host, goes to its backend, not the settings' 413."""
    for head in (b"POST /x HTTP/1.1\r\nHost: other.test\r\n", b"POST /x HTTP/1.0\r\n"):
        p = _pair(_CATCH_ALL, ingress_yaml("a", "a.test"))
        assert p.send(head + _BIG) == b""
        assert len(p.opens) == 1 and not p.records


def test_host_less_rules_do_not_own_the_default_servers_limit() -> None:
    """Host-less rules with proxy-body-size 10m: their own path takes 10m, a path none of
    them covers the default server's ``location /`` (the settings' 1m): 413, logged '-'."""
    ing = ingress_yaml("h", "", {P + "proxy-body-size": "10m"}, path="/api")
    p = _pair(ing)
    out = p.send(b"POST /x HTTP/1.1\r\nHost: other.test\r\n" + _BIG)
    assert status_of(out) == 413 and not p.opens
    assert [(r.status, upstream_names(r)[0], r.phase) for r in p.records] == [
        (413, "-", "server")]
    p = _pair(ing)
    assert p.send(b"POST /api HTTP/1.1\r\nHost: other.test\r\n" + _BIG) == b""
    assert len(p.opens) == 1


def _requests(m: Metrics) -> dict[str, str]:
    prefix = "nginx_ingress_controller_requests{"
    out = {}
    for line in m.render().decode().splitlines():
        if line.startswith(prefix):
            labels, _, value = line[len(prefix):].rpartition("} ")
            out[labels] = value
    return out


def _upgrade(request: h11.Request, body: bytes, up: object) -> Reply:
    return Reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n\r\n")


def test_ordinary_proxied_requests_are_all_counted_with_their_labels() -> None:
    """200, 502 (refused), 504 (timed out), 499 (client gone), 101 and the default backend's
    404 through the core: each record's phase is "location" and each is counted once, the
    routed ones with the route's labels."""
    ep = ("10.0.0.1", 8080)
    pairs = []
    p = ProxyPair()
    p.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    pairs.append(p)
    p = ProxyPair(refuse=[ep])
    p.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    pairs.append(p)
    p = ProxyPair(hang=[ep])
    p.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    while not p.records and p.timer is not None:
        p.fire()
    pairs.append(p)
    p = ProxyPair(defer=[ep])
    p.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    p.eof()
    pairs.append(p)
    p = ProxyPair(app=_upgrade)
    p.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    p.eof()
    pairs.append(p)
    p = _pair(ingress_yaml("a", "a.test", path="/foo"))
    p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    pairs.append(p)
    records = [r for p in pairs for r in p.records]
    assert sorted(r.status for r in records) == [101, 200, 404, 499, 502, 504]
    assert {r.phase for r in records} == {"location"}
    m = Metrics()
    for r in records:
        m.observe(r)
    seen = _requests(m)
    assert sum(float(v) for v in seen.values()) == len(records)
    routed = [k for k in seen if 'service="web"' in k]
    assert len(routed) == 5, seen  # all but the default backend's 404


def test_unrouted_413_is_counted_with_empty_location_labels() -> None:
    """Counted: the server's ``location /`` logs it (monitor.call() runs), with nginx.tmpl's
    ``set`` variables unrun (empty here whether or not ``_monitor_sees`` clears them: no
    Ingress matched): namespace, ingress, service, path and canary all empty (host
    too here: no ``set_hosts``, and an unrouted request's Host is client input)."""
    p = _pair(ingress_yaml("a", "a.test", {P + "proxy-body-size": "4"}, path="/foo"))
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n0123456789")
    assert status_of(out) == 413
    m = Metrics()
    for r in p.records:
        m.observe(r)
    assert _requests(m) == {'canary="",host="",ingress="",method="POST",namespace="",path="",'
                            'service="",status="413"': "1.0"}
