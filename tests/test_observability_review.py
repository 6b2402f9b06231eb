"""Session-10 review of the metrics and the access log against ingress-nginx (SEMANTICS §12).

Each test here failed on the code before the review's fix (see the report).
"""

from __future__ import annotations

import datetime
import json
import logging
import re

import pytest

import ingresslib
from ingresslib._accesslog import AccessLogFormatter, access_fields, format_line, upstream_names
from ingresslib._metrics import Metrics

from _records import rec
from _shop import shop_manifests

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 21, 13, 25, 42, tzinfo=UTC).timestamp()
P = "nginx_ingress_controller"


def _series(m: Metrics, name: str) -> list[dict[str, str]]:
    """The label sets of ``name``'s samples in the exposition."""
    out = []
    for line in m.render().decode().splitlines():
        hit = re.match(rf"{name}\{{(.*)\}} ", line)
        if hit:
            out.append(dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', hit.group(1))))
    return out


# --- canary requests: labelled with the rule's Ingress and Service, canary in `canary` ---------


def _canary_record(**kw: object) -> object:
    base: dict[str, object] = dict(
        canary=True, ingress="shop/web", namespace="shop", service="web-v2", service_port=8080,
        primary_service="web", primary_port=80)
    base.update(kw)
    return rec(**base)


def test_canary_request_keeps_the_main_service_label() -> None:
    # nginx.tmpl sets $service_name in the location, from the rule's Ingress (a canary Ingress
    # has no location of its own), and monitor.lua sends "service = ngx.var.service_name": the
    # canary shows in `canary` only, so service="web" counts all the rule's traffic.
    m = Metrics()
    m.observe(_canary_record())  # type: ignore[arg-type]
    (labels,) = _series(m, f"{P}_requests")
    assert (labels["ingress"], labels["namespace"], labels["service"], labels["canary"]) == (
        "web", "shop", "web", "shop-web-v2-8080")
    (lat,) = [s for s in _series(m, f"{P}_ingress_upstream_latency_seconds_count")]
    assert lat == {"ingress": "web", "namespace": "shop", "service": "web",
                   "canary": "shop-web-v2-8080"}


def test_canary_in_another_namespace_keeps_the_rule_namespace() -> None:
    # SEMANTICS §7 pairs a canary Ingress by host, path and pathType, whatever its namespace.
    # $namespace is the location's (main) Ingress's; the canary upstream is named in its own.
    r = _canary_record(namespace="canaries")
    m = Metrics()
    m.observe(r)  # type: ignore[arg-type]
    (labels,) = _series(m, f"{P}_requests")
    assert (labels["namespace"], labels["service"], labels["canary"]) == (
        "shop", "web", "canaries-web-v2-8080")
    assert upstream_names(r) == ("shop-web-80", "canaries-web-v2-8080")  # type: ignore[arg-type]
    line = format_line(access_fields(r, NOW, UTC))  # type: ignore[arg-type]
    assert " [shop-web-80] [canaries-web-v2-8080] " in line


SHOP = shop_manifests(addresses=("10.0.0.1", "10.0.0.2"))


def test_canary_labels_through_the_router_and_the_core() -> None:
    from _proxy_harness import ProxyPair

    router = ingresslib.Router(ingresslib.parse_manifests(SHOP))
    pair = ProxyPair(router=router)
    for canary in (b"always", b"never"):
        pair.send(b"GET /cart HTTP/1.1\r\nHost: shop.example.com\r\nX-Canary: " + canary
                  + b"\r\n\r\n")
    assert [r.canary for r in pair.records] == [True, False]
    m = Metrics()
    m.set_hosts(["shop.example.com"])
    for r in pair.records:
        m.observe(r)
    got = sorted((s["ingress"], s["service"], s["canary"]) for s in _series(m, f"{P}_requests"))
    assert got == [("shop", "api", ""), ("shop", "api", "shop-api-v2-80")]
    assert upstream_names(pair.records[0]) == ("shop-api-80", "shop-api-v2-80")


# --- cardinality without set_hosts ---------------------------------------------------------------


def test_host_label_is_bounded_without_set_hosts(caplog: pytest.LogCaptureFixture) -> None:
    # A rule without a host (or a wildcard) matches any Host a client sends. Without
    # set_hosts (an embedding that never calls it), each new Host used to make a new series
    # for the counter and eight histograms, kept forever.
    m = Metrics(max_hosts=50)
    for i in range(400):
        m.observe(rec(host=f"h{i}.attacker.test", rule_path="/"))
    hosts = {s["host"] for s in _series(m, f"{P}_requests")}
    assert len(hosts) == 51 and "" in hosts
    # Every request is still counted.
    total = sum(float(line.rsplit(" ", 1)[1]) for line in m.render().decode().splitlines()
                if line.startswith(f"{P}_requests{{"))
    assert total == 400
    # A host seen before the bound keeps its label.
    m.observe(rec(host="h0.attacker.test", rule_path="/"))
    assert f'host="h0.attacker.test",ingress="web",method="GET",namespace="shop",path="/",' \
        f'service="web",status="200"}} 2' in m.render().decode()
    # Said once, not per request.
    assert [r.getMessage() for r in caplog.records].count(
        'metrics: more than 50 distinct Host values and no set_hosts(); further ones are '
        'counted with host=""') == 1


def test_default_host_bound() -> None:
    m = Metrics()
    for i in range(1200):
        m.observe(rec(host=f"h{i}.test"))
    assert len({s["host"] for s in _series(m, f"{P}_requests")}) == 1001
    assert m.max_hosts == 1000


# --- JSON access log: the client's bytes as the text they spell ----------------------------------


def _json(r: object) -> dict[str, object]:
    f = access_fields(r, NOW, UTC)  # type: ignore[arg-type]
    text = AccessLogFormatter("json").format(logging.makeLogRecord({"access": f}))
    assert text.isascii()
    out: dict[str, object] = json.loads(text)
    return out


def test_json_log_reads_utf8_header_bytes_as_text() -> None:
    # The core keeps header bytes as latin-1 characters: UTF-8 "é" (C3 A9) is "Ã©". nginx's
    # escape=json copies bytes above 0x1f as they are (ngx_escape_json), so ingress-nginx's
    # JSON log reads "é"; ours used to read "Ã©".
    utf8 = "é ü 日本".encode().decode("latin-1")
    r = rec(user_agent="Mozilla/5.0 " + utf8, referer="http://x.test/" + utf8,
            remote_user="josé".encode().decode("latin-1"),
            request_line="GET /caf" + "é".encode().decode("latin-1") + " HTTP/1.1")
    obj = _json(r)
    assert obj["http_user_agent"] == "Mozilla/5.0 é ü 日本"
    assert obj["http_referer"] == "http://x.test/é ü 日本"
    assert obj["remote_user"] == "josé"
    assert obj["request"] == "GET /café HTTP/1.1"
    # The text line still escapes every byte, as nginx's default escaping does.
    assert '"Mozilla/5.0 \\xC3\\xA9 ' in format_line(access_fields(r, NOW, UTC))


def test_json_log_shows_bytes_that_are_not_utf8_as_hex() -> None:
    # nginx would write byte FF raw (an invalid UTF-8 line); ours keeps the JSON valid ASCII and
    # shows the byte as the text line does. Control bytes are JSON escapes, as nginx's.
    obj = _json(rec(user_agent="a\xffb\xc3\xa9\x01\"\\"))
    assert obj["http_user_agent"] == "a\\xFFbé\x01\"\\"
    # Values that are not latin-1 (built by other code) are taken as text, unchanged.
    assert _json(rec(user_agent="a\u2028b"))["http_user_agent"] == "a\u2028b"
    # ASCII values and the other fields are untouched.
    plain = _json(rec())
    assert plain["http_user_agent"] == "curl/8" and plain["status"] == 200


# --- the path label of a rule without a path, and of an Ingress's defaultBackend ----------------


def test_path_label_is_slash_for_a_rule_without_path_and_for_default_backend() -> None:
    # template.go getIngressInformation: "if ingressPath == \"\" { ingressPath = \"/\"; info.Path
    # = \"/\" }" sets $location_path, which monitor.lua sends as `path`. Only a request no
    # Ingress took (ingress-nginx: a location without an Ingress) has path="".
    y = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: ns}
spec:
  defaultBackend: {service: {name: d, port: {number: 80}}}
  rules:
  - host: a.test
    http:
      paths:
      - {pathType: ImplementationSpecific, backend: {service: {name: s, port: {number: 80}}}}
"""
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(y))
    m = Metrics()
    for host in ("a.test", "b.test"):
        match = table.match(host, "/x")
        assert match is not None and match.path is None
        m.observe(rec(host=host, rule_path=match.path, ingress=match.ingress,
                      service=match.service, namespace=match.namespace))
    m.observe(rec(host="c.test", rule_path=None, ingress=None, service=None, namespace=None,
                  status=404))
    got = sorted((s["host"], s["ingress"], s["service"], s["path"])
                 for s in _series(m, f"{P}_requests"))
    assert got == [("", "", "", ""), ("a.test", "a", "s", "/"), ("b.test", "a", "d", "/")]


def test_last_reload_timestamp_is_whole_seconds() -> None:
    # controller.go ConfigSuccess: "cm.configSuccessTime.Set(float64(time.Now().Unix()))".
    m = Metrics()
    m.reload_succeeded(1700000000.75)
    assert f"{P}_config_last_reload_successful_timestamp_seconds 1.7e+09\n" in m.render().decode()
    m.reload_succeeded(1700000001.999)
    assert f"{P}_config_last_reload_successful_timestamp_seconds 1.700000001e+09\n" in \
        m.render().decode()


def test_json_log_of_a_utf8_user_agent_through_the_core() -> None:
    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route(path="/", host="foo.test")])
    pair.send("GET /caf%C3%A9 HTTP/1.1\r\nHost: foo.test\r\nUser-Agent: b\u00f6t/1\r\n"
              "Referer: http://foo.test/\u00e9\r\n\r\n".encode())
    (record,) = pair.records
    assert record.status == 200
    obj = _json(record)
    assert obj["http_user_agent"] == "b\u00f6t/1"
    assert obj["http_referer"] == "http://foo.test/\u00e9"
    assert obj["request"] == "GET /caf%C3%A9 HTTP/1.1"
    assert '"b\\xC3\\xB6t/1"' in format_line(access_fields(record, NOW, UTC))
