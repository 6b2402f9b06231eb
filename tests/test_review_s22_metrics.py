"""Fresh-eyes review of the metrics and the access log (session 22, H7).

Each case drives the real proxy core (tests/_proxy_harness.py) with a real ``Router`` where it
matters, and checks what ingress-nginx's monitor.lua / socket.go and nginx's access log would
give: which requests are counted and under which labels, label escaping, series bounded under
hostile Host headers, access-log escaping of client bytes, time fields.

Defects fixed here (the tests fail on the tree before session 22):

- histogram bounds given with ``+Inf`` wrote ``le="+Inf"`` twice per series, and bounds out of
  order were bisected as given (observations counted into the wrong buckets); client_golang's
  newHistogram drops a given +Inf ("The +Inf bucket is implicit. Remove it here.") and refuses
  unordered bounds;
- ``hosts_of`` counted a host only a canary Ingress names as served: ingress-nginx's
  createServers skips canary Ingresses ("Ingress %v is marked as Canary, ignoring"), so such a
  host has no server and is not in ``SetHosts``.
"""

from __future__ import annotations

import datetime
import math
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

import ingresslib
from ingresslib._accesslog import access_fields, format_line
from ingresslib._metrics import Metrics, hosts_of
from ingresslib.proxy._actions import RequestRecord

from _proxy_harness import ProxyPair, Route
from _records import rec

P = "nginx_ingress_controller"
UTC = datetime.timezone.utc

_MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  tls: [{hosts: [tls.test], secretName: missing}]
  rules:
  - host: foo.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: '/q"b', pathType: ImplementationSpecific,
         backend: {service: {name: web, port: {number: 80}}}}
  - host: tls.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-weight: "100"
spec:
  rules:
  - host: foo.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: web-v2, port: {name: http}}}}
  - host: only-canary.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-v2, port: {name: http}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 8080}]}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web-v2, namespace: shop}
subsets: [{addresses: [{ip: 10.0.0.2}], ports: [{port: 8080, name: http}]}]
"""


def _setup() -> tuple[ingresslib.Resources, ingresslib.Router, Metrics]:
    res = ingresslib.parse_manifests(_MANIFESTS)
    router = ingresslib.Router(res, seed=1)
    m = Metrics()
    m.set_hosts(hosts_of(res, router.table.served))
    return res, router, m


def _through(router: object, raw: bytes, **kw: object) -> list[RequestRecord]:
    pair = ProxyPair(router=router, **kw)  # type: ignore[arg-type]
    pair.send(raw)
    return pair.records


def _requests(m: Metrics) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted label pairs: value}`` of the requests counter, read by a Prometheus parser."""
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        if fam.name == f"{P}_requests":
            for s in fam.samples:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def _labels(**kw: str) -> tuple[tuple[str, str], ...]:
    base = dict(canary="", host="foo.test", ingress="web", method="GET", namespace="shop",
                path="/api", service="web", status="200")
    base.update(kw)
    return tuple(sorted(base.items()))


def _get(host: str, target: str = "/api/x", extra: bytes = b"") -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1") + extra + b"\r\n")


# ---------------------------------------------------------------- histogram bounds (defect)


def _bucket_les(m: Metrics, name: str) -> list[str]:
    text = m.render().decode()
    return re.findall(rf'^{P}_{name}_bucket{{[^}}]*le="([^"]*)"', text, re.M)


def test_a_given_inf_bound_is_the_one_inf_bucket() -> None:
    # Before: le="+Inf" twice per series (client_golang drops a given +Inf: "The +Inf bucket
    # is implicit. Remove it here."; prometheus-client takes it as that bucket).
    m = Metrics(time_buckets=(0.01, 0.1, 1.0, math.inf))
    m.observe(rec())
    assert _bucket_les(m, "request_duration_seconds") == ["0.01", "0.1", "1", "+Inf"]
    g = Metrics(time_buckets=(0.01, 0.1, 1.0, math.inf), go_names=False)
    g.observe(rec())
    les = re.findall(rf'^{P}_request_duration_seconds_bucket{{[^}}]*le="([^"]*)"',
                     g.render().decode(), re.M)
    assert les == ["0.01", "0.1", "1.0", "+Inf"]


def test_bounds_out_of_order_count_into_the_right_buckets() -> None:
    # Before: bisected as given, a 30 ms request was not in le="0.05" (0, then 1 at le="1"),
    # and le="0.01" came twice: 0.05 0, 0.01 0, 1 1, 0.01 1, +Inf 1.
    m = Metrics(time_buckets=(0.05, 0.01, 1.0, 0.01))
    m.observe(rec())  # 30 ms
    text = m.render().decode()
    counts = re.findall(rf'^{P}_request_duration_seconds_bucket{{[^}}]*le="([^"]*)"[^}}]*}} '
                        r"(\S+)$", text, re.M)
    assert counts == [("0.01", "0.0"), ("0.05", "1.0"), ("1", "1.0"), ("+Inf", "1.0")]


def test_a_nan_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        Metrics(size_buckets=(10.0, math.nan))


# ---------------------------------------------------------------- which requests, which labels


def test_a_host_only_a_canary_names_is_not_a_served_host() -> None:
    # Before: hosts_of listed only-canary.test, so each 404 there was counted under that host;
    # ingress-nginx builds no server for a canary Ingress (createServers: "Ingress %v is
    # marked as Canary, ignoring"), so the host is not in SetHosts and nothing is counted.
    res, router, m = _setup()
    assert hosts_of(res, router.table.served) == {"foo.test", "tls.test"}
    [r] = _through(router, _get("only-canary.test", "/"))
    assert r.status == 404
    m.observe(r)
    assert _requests(m) == {}


def test_canary_traffic_is_counted_under_the_main_rule_with_the_canary_upstream() -> None:
    # nginx.tmpl sets $namespace/$ingress_name/$service_name from the main rule's location;
    # balancer.lua sets $proxy_alternative_upstream_name to the canary's upstream.
    _, router, m = _setup()
    [r] = _through(router, _get("foo.test"))
    assert r.canary and r.status == 200
    m.observe(r)
    assert _requests(m) == {_labels(canary="shop-web-v2-http"): 1.0}
    line = format_line(access_fields(r, 0.0, UTC))
    assert " [shop-web-80] [shop-web-v2-http] 10.0.0.2:8080 " in line


def test_unmatched_hosts_create_no_series() -> None:
    # socket.go: "if sc.metricsPerHost && !sc.hosts.Has(stats.Host) { continue }".
    _, router, m = _setup()
    for i in range(50):
        for r in _through(router, _get(f"h{i}.evil.test", "/")):
            assert r.status == 404
            m.observe(r)
    assert _requests(m) == {}
    assert len(m._requests.series) == 0


def test_hostile_hosts_through_a_catch_all_are_bounded_without_set_hosts() -> None:
    # An embedding that never calls set_hosts: a catch-all rule matches every Host, and only
    # the first max_hosts names get their own label.
    m = Metrics(max_hosts=5)
    for i in range(40):
        for r in _through(None, _get(f"x{i}.test", "/"), routes=[Route()]):
            m.observe(r)
    hosts = {dict(k)["host"] for k in _requests(m)}
    assert len(hosts) == 6 and "" in hosts
    assert sum(_requests(m).values()) == 40.0


def test_local_answers_labels() -> None:
    _, router, m = _setup()
    # A served host's path no rule covers: 404, no Ingress took it (README divergence row).
    [r404] = _through(router, _get("foo.test", "/nowhere"))
    # Content-Length over proxy-body-size: 413 before the location's variables are set.
    [r413] = _through(router, _get("foo.test", extra=b"Content-Length: 99999999\r\n"))
    # A malformed head: refused before any location, never counted.
    [r400] = _through(router, b"GET /api/x HTTP/1.1\r\nHost: foo.test\r\nBad Header: x\r\n\r\n")
    # ssl-redirect in the location's rewrite phase (lua_ingress.rewrite): counted with labels.
    [r308] = _through(router, _get("tls.test", "/"), tls_hosts=("tls.test",))
    assert (r404.status, r413.status, r400.status, r308.status) == (404, 413, 400, 308)
    for r in (r404, r413, r400, r308):
        m.observe(r)
    empty = dict(ingress="", namespace="", service="", path="")
    assert _requests(m) == {
        _labels(status="404", **empty): 1.0,
        _labels(status="413", **empty): 1.0,
        _labels(status="308", host="tls.test", path="/"): 1.0,
    }
    # The access log logs them all, each with the upstream name nginx would have set by then.
    lines = [format_line(access_fields(r, 0.0, UTC)) for r in (r404, r413, r400, r308)]
    assert [ln.split(" [")[2].split("]")[0] for ln in lines] == [
        "upstream-default-backend", "-", "", "shop-web-80"]


def test_a_retried_request_is_one_request_with_every_try_in_the_log() -> None:
    routes = [Route(endpoints=[("10.0.0.1", 8080), ("10.0.0.2", 8080)])]
    [r] = _through(None, _get("foo.test"), routes=routes, refuse=[("10.0.0.1", 8080)])
    assert r.status == 200
    m = Metrics()
    m.observe(r)
    assert list(_requests(m).values()) == [1.0]
    text = m.render().decode()
    counts = re.findall(rf"^{P}_(\w+)_count{{[^}}]*}} (\S+)$", text, re.M)
    # One observation per histogram (the last try's connect/header/response times).
    assert dict(counts) == {
        "request_duration_seconds": "1.0", "connect_duration_seconds": "1.0",
        "header_duration_seconds": "1.0", "response_duration_seconds": "1.0",
        "request_size": "1.0", "response_size": "1.0", "bytes_sent": "1.0",
        "ingress_upstream_latency_seconds": "1.0"}
    f = access_fields(r, 0.0, UTC)
    assert f["upstream_addr"] == "10.0.0.1:8080, 10.0.0.2:8080"
    assert f["upstream_status"] == "502, 200"
    assert f["upstream_response_length"].startswith("0, ")
    assert len(f["upstream_response_time"].split(", ")) == 2


# ---------------------------------------------------------------- escaping


def test_label_values_with_quote_backslash_newline_read_back_exactly() -> None:
    _, router, m = _setup()
    # A rule path holding '"' (reached as %22); '\\' and a newline cannot be reached through
    # the core (%5C is refused), a record made by other code may hold them.
    [r] = _through(router, _get("foo.test", "/q%22b"))
    assert r.rule_path == '/q"b' and r.status == 200
    m.observe(r)
    m.observe(rec(host="foo.test", rule_path="/a\nb\\\"", ingress="shop/web"))
    text = m.render().decode()
    paths = {dict(k)["path"] for k in _requests(m)}
    assert paths == {'/q"b', '/a\nb\\"'}
    # Every line is one sample or comment: no raw newline inside a label value.
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{.*\})? \S+', line), line


def test_client_bytes_in_the_access_log_are_escaped_like_nginx() -> None:
    # ngx_http_log_escape: '"', '\\', bytes below 0x20 and from 0x7F up become \xHH.
    _, router, _m = _setup()
    [r] = _through(router, _get("foo.test", extra=b'User-Agent: a\tb"c\\d\xe9\r\n'
                                b"Referer: \x80x\r\n"))
    line = format_line(access_fields(r, 0.0, UTC))
    assert '"\\x80x" "a\\x09b\\x22c\\x5Cd\\xE9"' in line
    # A refused request line is logged escaped too, byte for byte as received.
    [bad] = _through(router, b'GET /caf\xc3\xa9?q="\\ HTTP/1.1\r\nHost: foo.test\r\n\r\n')
    assert bad.status == 400
    assert '"GET /caf\\xC3\\xA9?q=\\x22\\x5C HTTP/1.1" 400 ' in format_line(
        access_fields(bad, 0.0, UTC))
    assert "\n" not in line and "\t" not in line


def test_time_fields() -> None:
    # $time_local "%02d/%s/%d:%02d:%02d:%02d %c%02i%02i" in the given zone, English month;
    # $request_time seconds with milliseconds.
    tz = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))
    when = datetime.datetime(2026, 3, 4, 1, 2, 3, tzinfo=UTC).timestamp()
    f = access_fields(rec(start=10.0, end=11.25, upstream_response_time=1.2,
                          upstream_response_times=(1.2,)), when, tz)
    assert f["time_local"] == "03/Mar/2026:21:32:03 -0330"
    assert f["request_time"] == "1.250"
    assert f["upstream_response_time"] == "1.200"


def test_a_request_naming_no_host_is_counted_as_the_catch_all_server() -> None:
    # HTTP/1.0 without Host reaches the catch-all server; nginx's $host is then its server
    # name, "_" (ngx_http_variable_host: cscf->server_name), which ingress-nginx's
    # getConfiguration always puts in SetHosts (every server's Hostname). Before: not counted.
    m = Metrics()
    m.set_hosts({"foo.test"})
    [r] = _through(None, b"GET /x HTTP/1.0\r\n\r\n", routes=[Route()])
    assert r.status == 200 and r.host == ""
    m.observe(r)
    [u] = _through(None, b"GET /x HTTP/1.0\r\n\r\n", routes=[Route(host="foo.test")])
    assert u.status == 404
    m.observe(u)
    assert _requests(m) == {
        _labels(host="_", namespace="default", path="/", status="200"): 1.0,
        _labels(host="_", ingress="", namespace="", path="", service="", status="404"): 1.0}
    # A reload keeps them: the catch-all server never goes.
    m.set_hosts({"bar.test"})
    assert len(_requests(m)) == 2
    # A Host header naming another host is still not counted.
    [o] = _through(None, _get("other.test", "/x"), routes=[Route()])
    m.observe(o)
    assert len(_requests(m)) == 2
