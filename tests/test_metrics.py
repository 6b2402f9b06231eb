"""ingresslib._metrics: ingress-nginx metric names and labels, private registries, the server."""

from __future__ import annotations

import asyncio
import base64
import datetime
import re

import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from ingresslib._metrics import (
    Metrics,
    MetricsServer,
    certificate_not_after,
    certificates_of,
    hosts_of,
)
from ingresslib._models import (
    Ingress,
    IngressRule,
    IngressSpec,
    IngressTLS,
    ObjectMeta,
    Secret,
    freeze_map,
)
from ingresslib._resources import Resources

from _records import rec


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} parsed back from the exposition."""
    # Parsed by hand: prometheus-client's parser renames counter samples to ``*_total``.
    out = {}
    for line in m.render().decode().splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line)
        assert match, line
        labels = tuple(sorted(
            (k, v.replace('\\"', '"').replace("\\\\", "\\"))
            for k, v in _LABEL.findall(match["labels"] or "")))
        out[(match["name"], labels)] = float(match["value"])
    # Sanity: the exposition is valid for Prometheus' own parser too.
    assert list(text_string_to_metric_families(m.render().decode()))
    return out


_SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"')


LABELS = (("canary", ""), ("host", "foo.test"), ("ingress", "web"), ("method", "GET"),
          ("namespace", "shop"), ("path", "/api"), ("service", "web"), ("status", "200"))
LABELS_502 = tuple(("status", "502") if k == "status" else (k, v) for k, v in LABELS)
P = "nginx_ingress_controller"


def test_requests_counter_has_ingress_nginx_name_and_labels() -> None:
    m = Metrics()
    for _ in range(3):
        m.observe(rec())
    m.observe(rec(status=404))
    text = m.render().decode()
    # The Go client's spelling, which ingress-nginx dashboards query: no _total, no _created.
    assert f"# TYPE {P}_requests counter\n" in text
    assert (f'{P}_requests{{canary="",host="foo.test",ingress="web",method="GET",'
            f'namespace="shop",path="/api",service="web",status="200"}} 3.0\n') in text
    assert "_created" not in text
    s = samples(m)
    assert s[(f"{P}_requests", LABELS)] == 3
    four = tuple(("status", "404") if k == "status" else (k, v) for k, v in LABELS)
    assert s[(f"{P}_requests", four)] == 1


def test_path_label_is_rule_path_not_request_path() -> None:
    m = Metrics()
    m.observe(rec(path="/api/a"))
    m.observe(rec(path="/api/b"))
    text = m.render().decode()
    assert "/api/a" not in text and "/api/b" not in text
    assert samples(m)[(f"{P}_requests", LABELS)] == 2


def test_unmatched_request_has_empty_labels_and_no_host() -> None:
    # The Host header is client input: without a matched rule it never becomes a label value.
    m = Metrics()
    m.observe(rec(host="random-1.evil", rule_path=None, ingress=None, service=None,
                  namespace=None, status=404, upstreams=(), upstream_statuses=(),
                  upstream_status=None, upstream_connect=None, upstream_first_byte=None))
    text = m.render().decode()
    assert "evil" not in text
    key = (("canary", ""), ("host", ""), ("ingress", ""), ("method", "GET"), ("namespace", ""),
           ("path", ""), ("service", ""), ("status", "404"))
    s = samples(m)
    assert s[(f"{P}_requests", key)] == 1
    # No upstream: no connect/header/response duration, no latency summary.
    assert (f"{P}_connect_duration_seconds_count", key) not in s
    assert not any(n.startswith(f"{P}_ingress_upstream_latency") for n, _ in s)


def test_connect_duration_is_the_records_connect_time() -> None:
    # The core's records carry the connect time itself (from the connection's open); a record
    # without it falls back to the time from the request's start.
    m = Metrics()
    m.observe(rec(start=0.0, upstream_connect=0.5, upstream_first_byte=0.6, end=0.7,
                  upstream_connect_time=0.004))
    m.observe(rec(start=0.0, upstream_connect=0.3, upstream_first_byte=0.6, end=0.7))
    s = samples(m)
    assert s[(f"{P}_connect_duration_seconds_sum", LABELS)] == pytest.approx(0.304)
    assert s[(f"{P}_connect_duration_seconds_count", LABELS)] == 2


def test_header_and_response_durations_are_the_records_upstream_times() -> None:
    # ingress-nginx feeds them from $upstream_header_time and $upstream_response_time (from
    # the upstream attempt's start), which the core's records carry. Before: 0.6 (request
    # start -> first byte) and 0.4 (connect -> end).
    m = Metrics()
    m.observe(rec(start=0.0, upstream_connect=0.5, upstream_first_byte=0.6, end=0.9,
                  upstream_connect_time=0.05, upstream_header_time=0.15,
                  upstream_response_time=0.45))
    s = samples(m)
    assert s[(f"{P}_header_duration_seconds_sum", LABELS)] == pytest.approx(0.15)
    assert s[(f"{P}_response_duration_seconds_sum", LABELS)] == pytest.approx(0.45)
    # The deprecated summary is the connect time (monitor.lua's upstreamLatency).
    lat = (("canary", ""), ("ingress", "web"), ("namespace", "shop"), ("service", "web"))
    assert s[(f"{P}_ingress_upstream_latency_seconds_sum", lat)] == pytest.approx(0.05)


def test_a_last_try_without_response_has_a_response_duration_and_no_header_duration() -> None:
    # The core's record of a try that failed (connect refused at 0.3 s: no connection, no
    # head): nginx keeps a response time for it and no header time, and so do the metrics,
    # even though an earlier, rejected head left upstream_first_byte set.
    m = Metrics()
    m.observe(rec(status=502, upstream_status=None, upstream_statuses=(None,), start=0.0,
                  upstream_connect=None, upstream_first_byte=0.2, end=0.4,
                  upstream_header_time=None, upstream_response_time=0.3))
    s = samples(m)
    assert (f"{P}_header_duration_seconds_count", LABELS_502) not in s
    assert (f"{P}_connect_duration_seconds_count", LABELS_502) not in s
    assert s[(f"{P}_response_duration_seconds_sum", LABELS_502)] == pytest.approx(0.3)


def test_records_without_upstream_times_fall_back_to_the_old_computations() -> None:
    # A record built by other code (neither new field): header from the request's start to
    # the first upstream byte, response from the connect to the end.
    m = Metrics()
    m.observe(rec(start=0.0, upstream_connect=0.5, upstream_first_byte=0.6, end=0.9))
    s = samples(m)
    assert s[(f"{P}_header_duration_seconds_sum", LABELS)] == pytest.approx(0.6)
    assert s[(f"{P}_response_duration_seconds_sum", LABELS)] == pytest.approx(0.4)


def test_unknown_method_is_bounded() -> None:
    m = Metrics()
    m.observe(rec(method="FROBNICATE"))
    assert 'method="OTHER"' in m.render().decode()


def test_histogram_buckets() -> None:
    m = Metrics()
    m.observe(rec(start=0.0, end=0.03, upstream_connect=0.002, upstream_first_byte=0.02,
                  bytes_in=35, bytes_out=150))
    m.observe(rec(start=0.0, end=3.0, upstream_connect=0.5, upstream_first_byte=1.0,
                  bytes_in=10, bytes_out=5))
    s = samples(m)

    def bucket(name: str, le: str) -> float:
        return s[(f"{P}_{name}_bucket", tuple(sorted(LABELS + (("le", le),))))]

    # request_duration: 0.03 and 3.0 with the default Prometheus buckets.
    assert bucket("request_duration_seconds", "0.025") == 0
    assert bucket("request_duration_seconds", "0.05") == 1
    assert bucket("request_duration_seconds", "2.5") == 1
    assert bucket("request_duration_seconds", "5") == 2
    assert bucket("request_duration_seconds", "+Inf") == 2
    assert s[(f"{P}_request_duration_seconds_sum", LABELS)] == pytest.approx(3.03)
    assert s[(f"{P}_request_duration_seconds_count", LABELS)] == 2
    # Sizes: linear buckets 10..100; 10 falls in le="10" (le is inclusive; Go's spelling).
    assert bucket("request_size", "10") == 1
    assert bucket("request_size", "40") == 2
    assert bucket("response_size", "10") == 1
    assert bucket("response_size", "100") == 1
    assert bucket("response_size", "+Inf") == 2
    # bytes_sent: exponential buckets 10..1e7.
    assert bucket("bytes_sent", "10") == 1
    assert bucket("bytes_sent", "1000") == 2
    assert bucket("bytes_sent", "1e+07") == 2
    # Upstream timings.
    assert s[(f"{P}_connect_duration_seconds_sum", LABELS)] == pytest.approx(0.502)
    assert s[(f"{P}_header_duration_seconds_sum", LABELS)] == pytest.approx(1.02)
    assert s[(f"{P}_response_duration_seconds_sum", LABELS)] == pytest.approx(0.028 + 2.5)
    lat = (("canary", ""), ("ingress", "web"), ("namespace", "shop"), ("service", "web"))
    assert s[(f"{P}_ingress_upstream_latency_seconds_count", lat)] == 2
    # The connect times (no upstream_connect_time in these records: connect - start).
    assert s[(f"{P}_ingress_upstream_latency_seconds_sum", lat)] == pytest.approx(0.502)


def test_canary_label_names_the_canary_upstream() -> None:
    m = Metrics()
    m.observe(rec(canary=True, service="web-canary"))
    assert 'canary="shop-web-canary"' in m.render().decode()


def test_options_status_classes_and_no_host() -> None:
    m = Metrics(per_host=False, report_status_classes=True)
    m.observe(rec(status=503))
    text = m.render().decode()
    assert 'status="5xx"' in text
    assert "host=" not in text


def test_prefix_and_standard_names() -> None:
    m = Metrics(prefix="ingresslib", go_names=False)
    m.observe(rec())
    m.reload_succeeded(5.0)
    text = m.render().decode()
    assert "ingresslib_requests_total{" in text  # prometheus-client's own spelling
    assert "ingresslib_success_total 1.0" in text
    assert "nginx_ingress_controller" not in text


def test_private_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.observe(rec())
    a.reload_failed(1.0)
    assert a.registry is not b.registry
    sa, sb = samples(a), samples(b)
    assert sa[(f"{P}_requests", LABELS)] == 1
    assert (f"{P}_requests", LABELS) not in sb
    assert sa[(f"{P}_errors", ())] == 1 and sb[(f"{P}_errors", ())] == 0
    # And nothing leaked into prometheus-client's global registry.
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value(f"{P}_errors") is None


def test_reload_gauges_and_counters() -> None:
    m = Metrics()
    m.reload_succeeded(1700000000.0, 12345)
    s = samples(m)
    assert s[(f"{P}_config_last_reload_successful", ())] == 1
    assert s[(f"{P}_config_last_reload_successful_timestamp_seconds", ())] == 1700000000.0
    assert s[(f"{P}_config_hash", ())] == 12345
    assert s[(f"{P}_success", ())] == 1
    m.reload_failed(1700000100.0)
    s = samples(m)
    assert s[(f"{P}_config_last_reload_successful", ())] == 0
    # The last good configuration keeps serving: its timestamp and hash stay.
    assert s[(f"{P}_config_last_reload_successful_timestamp_seconds", ())] == 1700000000.0
    assert s[(f"{P}_config_hash", ())] == 12345
    assert s[(f"{P}_errors", ())] == 1
    m.reload_succeeded(1700000200.0, "sha256:abcd")
    h = samples(m)[(f"{P}_config_hash", ())]
    assert h != 12345 and h == int(h) and 0 <= h < 2 ** 52
    m.on_reload(False, "bad")
    assert samples(m)[(f"{P}_errors", ())] == 2


def test_certificate_expiry_gauge_replaced_as_a_whole() -> None:
    m = Metrics()
    when = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    m.set_certificates([("foo.test", "shop/foo-tls", when),
                        ("bar.test", "shop/bar-tls", datetime.datetime(2031, 1, 1))])
    s = samples(m)
    key = (("host", "foo.test"), ("namespace", "shop"), ("secret_name", "foo-tls"))
    assert s[(f"{P}_ssl_expire_time_seconds", key)] == when.timestamp()
    bar = (("host", "bar.test"), ("namespace", "shop"), ("secret_name", "bar-tls"))
    assert s[(f"{P}_ssl_expire_time_seconds", bar)] == datetime.datetime(
        2031, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
    m.set_certificates([("foo.test", "shop/foo-tls", when)])
    s = samples(m)
    assert (f"{P}_ssl_expire_time_seconds", bar) not in s
    assert (f"{P}_ssl_expire_time_seconds", key) in s


def test_certificate_not_after_reads_real_certificates() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("foo.test")
    pem = cert.cert_chain_pems[0].bytes()
    from cryptography import x509

    expected = x509.load_pem_x509_certificate(pem).not_valid_after_utc
    assert certificate_not_after(pem) == expected
    assert certificate_not_after(ca.cert_pem.bytes()) == x509.load_pem_x509_certificate(
        ca.cert_pem.bytes()).not_valid_after_utc
    with pytest.raises(ValueError):
        certificate_not_after(b"garbage")
    with pytest.raises(ValueError):
        certificate_not_after(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")


def test_certificates_of_resources() -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("a.test", "b.test")
    pem, key = issued.cert_chain_pems[0].bytes(), issued.private_key_pem.bytes()
    from cryptography import x509

    when = x509.load_pem_x509_certificate(pem).not_valid_after_utc

    def secret(name: str, crt: bytes) -> Secret:
        return Secret(metadata=ObjectMeta(name=name, namespace="shop"), type="kubernetes.io/tls",
                      data=freeze_map({"tls.crt": base64.b64encode(crt).decode(),
                                       "tls.key": base64.b64encode(key).decode()}))

    def ingress(name: str, tls: tuple[tuple[tuple[str, ...], str], ...],
                rule_hosts: tuple[str, ...] = ()) -> Ingress:
        return Ingress(metadata=ObjectMeta(name=name, namespace="shop"), spec=IngressSpec(
            rules=tuple(IngressRule(host=h) for h in rule_hosts),
            tls=tuple(IngressTLS(hosts=hosts, secret_name=s) for hosts, s in tls)))

    res = Resources(
        ingresses=(ingress("one", ((("a.test",), "good"),)),
                   ingress("two", (((), "good"), (("c.test",), "broken"), (("d.test",), "gone")),
                           rule_hosts=("b.test",))),
        secrets=(secret("good", pem), secret("broken", b"not a certificate")),
    )
    got = certificates_of(res)
    assert got == [("a.test", "shop/good", when), ("b.test", "shop/good", when)]
    assert certificates_of(res, [res.ingresses[0]]) == [("a.test", "shop/good", when)]
    m = Metrics()
    m.set_certificates(got)
    assert samples(m)[(f"{P}_ssl_expire_time_seconds",
                       (("host", "b.test"), ("namespace", "shop"), ("secret_name", "good")))] \
        == when.timestamp()


def test_watch_counters() -> None:
    m = Metrics()
    m.watch_event("Ingress", "ADDED")
    m.watch_event("Ingress", "ADDED")
    m.watch_error("Service")
    m.watch_reconnect("Service")
    m.watch_relist("EndpointSlice")
    s = samples(m)
    assert s[("ingresslib_watch_events_total", (("kind", "Ingress"), ("type", "ADDED")))] == 2
    assert s[("ingresslib_watch_errors_total", (("kind", "Service"),))] == 1
    assert s[("ingresslib_watch_reconnects_total", (("kind", "Service"),))] == 1
    assert s[("ingresslib_watch_relists_total", (("kind", "EndpointSlice"),))] == 1


def test_label_values_are_escaped() -> None:
    m = Metrics()
    m.observe(rec(rule_path='/a"b\\c'))
    assert r'path="/a\"b\\c"' in m.render().decode()


# --- the server over a real socket -----------------------------------------------------------


async def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, headers, body


@pytest.mark.asyncio
async def test_server_metrics_and_healthz() -> None:
    m = Metrics()
    m.observe(rec())
    healthy = [True]
    server = MetricsServer(m, "127.0.0.1", 0, healthy=lambda: healthy[0])
    port = await server.start()
    try:
        assert port > 0
        status, headers, body = await _get(port, "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) == len(body)
        assert f"{P}_requests{{".encode() in body
        assert (await _get(port, "/healthz"))[::2] == (200, b"ok")
        healthy[0] = False
        assert (await _get(port, "/healthz"))[0] == 503
        assert (await _get(port, "/nope"))[0] == 404
        assert (await _get(port, "/metrics", "POST"))[0] == 405
        status, headers, body = await _get(port, "/metrics", "HEAD")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    finally:
        await server.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.asyncio
async def test_server_keep_alive_and_bad_requests() -> None:
    m = Metrics()

    def boom() -> bool:
        raise RuntimeError("check broke")

    server = MetricsServer(m, "127.0.0.1", 0, healthy=boom)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        first = await reader.readuntil(b"unhealthy")
        second = await reader.readuntil(b"unhealthy")
        assert first.startswith(b"HTTP/1.1 503") and second.startswith(b"HTTP/1.1 503")
        writer.close()
        await writer.wait_closed()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"garbage garbage\r\n\r\n")
        data = await reader.read()
        assert data.startswith(b"HTTP/1.1 400")
        writer.close()
        await writer.wait_closed()
    finally:
        await server.close()


@pytest.mark.asyncio
async def test_close_drops_idle_keep_alive_clients() -> None:
    server = MetricsServer(Metrics(), "127.0.0.1", 0)
    port = await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(server.close(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


def test_a_record_from_the_proxy_core() -> None:
    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route(path="/api", host="foo.test")])
    pair.send(b"GET /api/x HTTP/1.1\r\nHost: foo.test\r\n\r\n")
    pair.send(b"GET /api/y HTTP/1.1\r\nHost: foo.test\r\n\r\n")
    m = Metrics()
    for r in pair.records:
        m.observe(r)
    text = m.render().decode()
    assert f'{P}_requests{{canary="",host="foo.test",ingress="' in text
    assert 'path="/api"' in text and "/api/x" not in text
    assert f"{P}_header_duration_seconds_count" in text


# --- compatibility with ingress-nginx's collectors (socket.go, monitor.lua) --------------------


def test_upstream_latency_summary_observes_the_connect_time() -> None:
    # monitor.lua: upstreamLatency = tonumber(ngx.var.upstream_connect_time); socket.go feeds
    # that one value to connect_duration_seconds and ingress_upstream_latency_seconds alike.
    # Before: the time from the request's start to the first upstream byte (0.6 here).
    m = Metrics()
    m.observe(rec(start=0.0, upstream_connect=0.5, upstream_first_byte=0.6, end=0.9,
                  upstream_connect_time=0.05, upstream_header_time=0.15,
                  upstream_response_time=0.45))
    s = samples(m)
    lat = (("canary", ""), ("ingress", "web"), ("namespace", "shop"), ("service", "web"))
    assert s[(f"{P}_ingress_upstream_latency_seconds_sum", lat)] == pytest.approx(0.05)
    assert s[(f"{P}_ingress_upstream_latency_seconds_sum", lat)] == \
        s[(f"{P}_connect_duration_seconds_sum", LABELS)]
    # A try that never connected: socket.go skips both (stats.Latency == -1).
    m = Metrics()
    m.observe(rec(status=502, upstream_status=None, upstream_statuses=(None,), start=0.0,
                  upstream_connect=None, upstream_first_byte=0.2, end=0.4,
                  upstream_header_time=None, upstream_response_time=0.3))
    assert not any(n.startswith(f"{P}_ingress_upstream_latency") for n, _ in samples(m))


def test_status_label_is_nginx_three_digit_status() -> None:
    # nginx's $status is printed "%03ui": a request answered with nothing is "000" (and its
    # class, socket.go's "%cxx" of the first character, "0xx"). Before: "0", no class.
    m = Metrics()
    m.observe(rec(status=0))
    assert 'status="000"' in m.render().decode()
    m = Metrics(report_status_classes=True)
    m.observe(rec(status=0))
    m.observe(rec(status=499))
    text = m.render().decode()
    assert 'status="0xx"' in text and 'status="4xx"' in text


def test_bucket_bounds_are_spelled_like_the_go_client() -> None:
    # client_golang writes le with strconv.FormatFloat(f, 'g', -1, 64): le="1", le="10",
    # le="1e+06", le="0.005"; a dashboard or alert selecting le="1" must find the series.
    # Before: prometheus-client's le="1.0", le="10.0".
    m = Metrics()
    m.observe(rec())
    text = m.render().decode()
    assert f'{P}_request_duration_seconds_bucket{{' in text
    les = set(re.findall(r'le="([^"]*)"', text))
    assert {"0.005", "0.25", "1", "2.5", "5", "10", "100", "1000", "100000", "1e+06",
            "1e+07", "+Inf"} <= les
    assert not any(le.endswith(".0") for le in les)
    # prometheus-client's own spelling stays with go_names=False.
    m = Metrics(go_names=False)
    m.observe(rec())
    assert 'le="1.0"' in m.render().decode()


def test_hosts_not_served_are_not_counted_per_host() -> None:
    # socket.go: "if sc.metricsPerHost && !sc.hosts.Has(stats.Host) { continue }" ("Skipping
    # metric for host not being served"; ingress-nginx#3713, #3844: a catch-all or wildcard
    # rule would otherwise turn every client's Host header into a series). Before: a
    # catch-all rule labelled host with whatever the client sent.
    m = Metrics()
    m.set_hosts(["foo.test", "*.wild.test"])
    for i in range(3):
        m.observe(rec(host=f"random-{i}.evil"))  # matched a catch-all rule
    m.observe(rec(host="a.wild.test"))  # matched by the wildcard, not a served name
    m.observe(rec(host="nothing.test", rule_path=None, ingress=None, service=None,
                  namespace=None, status=404))
    m.observe(rec())
    text = m.render().decode()
    assert "evil" not in text and "wild" not in text and "nothing" not in text
    s = samples(m)
    assert s[(f"{P}_requests", LABELS)] == 1
    assert sum(v for (n, _), v in s.items() if n == f"{P}_requests") == 1
    # --metrics-per-host=false: every request counts, with no host label.
    m = Metrics(per_host=False)
    m.set_hosts(["foo.test"])
    m.observe(rec(host="random.evil"))
    m.observe(rec())
    no_host = tuple(kv for kv in LABELS if kv[0] != "host")
    assert samples(m)[(f"{P}_requests", no_host)] == 2
    # A new set replaces the old one.
    m = Metrics()
    m.set_hosts(["foo.test"])
    m.set_hosts(["bar.test"])
    m.observe(rec())
    assert not any(n == f"{P}_requests" for n, _ in samples(m))


def test_hosts_of_served_ingresses() -> None:
    res = Resources(ingresses=(
        Ingress(metadata=ObjectMeta(name="a", namespace="shop"), spec=IngressSpec(
            rules=(IngressRule(host="foo.test"), IngressRule(host="*.wild.test"),
                   IngressRule()))),
        Ingress(metadata=ObjectMeta(name="b", namespace="shop"), spec=IngressSpec(
            rules=(IngressRule(host="bar.test"),))),
    ))
    assert hosts_of(res) == frozenset({"foo.test", "*.wild.test", "bar.test"})
    assert hosts_of(res, [res.ingresses[1]]) == frozenset({"bar.test"})


def test_upstream_latency_summary_has_go_quantiles_over_ten_minutes() -> None:
    # socket.go: a SummaryVec with Objectives {0.5: 0.05, 0.9: 0.01, 0.99: 0.001} and
    # client_golang's default MaxAge (10 minutes, 5 age buckets). Before: count and sum only.
    m = Metrics()
    now = [1000.0]
    m._requests.clock = lambda: now[0]
    for i in range(1, 101):
        m.observe(rec(start=0.0, upstream_connect=1.0, upstream_connect_time=i / 100))
    lat = (("canary", ""), ("ingress", "web"), ("namespace", "shop"), ("service", "web"))
    s = samples(m)
    name = f"{P}_ingress_upstream_latency_seconds"
    assert s[(name, tuple(sorted(lat + (("quantile", "0.5"),))))] == pytest.approx(0.5)
    assert s[(name, tuple(sorted(lat + (("quantile", "0.9"),))))] == pytest.approx(0.9)
    assert s[(name, tuple(sorted(lat + (("quantile", "0.99"),))))] == pytest.approx(0.99)
    assert s[(f"{name}_count", lat)] == 100
    # Ten minutes later the window is empty: NaN quantiles, the count and sum stay.
    now[0] += 601
    s = samples(m)
    assert s[(name, tuple(sorted(lat + (("quantile", "0.5"),))))] != \
        s[(name, tuple(sorted(lat + (("quantile", "0.5"),))))]  # NaN
    assert s[(f"{name}_count", lat)] == 100
    # Memory stays bounded however many requests arrive.
    for _ in range(20000):
        m.observe(rec(start=0.0, upstream_connect=1.0, upstream_connect_time=0.25))
    assert sum(len(b) for b in m._requests.latency_window[lat_key_of(lat)].buckets) <= 5 * 1024
    assert samples(m)[(name, tuple(sorted(lat + (("quantile", "0.5"),))))] == 0.25


def lat_key_of(lat: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    d = dict(lat)
    return (d["ingress"], d["namespace"], d["service"], d["canary"])


def test_a_retried_request_observes_its_last_try() -> None:
    # A known difference, kept: nginx lists one time per try ("0.004, 0.002"), which
    # monitor.lua's tonumber() cannot read, so ingress-nginx observes no connect, header,
    # response or latency time for a retried request; ingresslib observes the last try's.
    m = Metrics()
    m.observe(rec(upstreams=(("10.0.0.1", 8080), ("10.0.0.2", 8080)),
                  upstream_statuses=(502, 200), start=0.0, upstream_connect=0.5,
                  upstream_first_byte=0.6, end=0.9, upstream_connect_time=0.002,
                  upstream_header_time=0.1, upstream_response_time=0.3))
    s = samples(m)
    assert s[(f"{P}_connect_duration_seconds_sum", LABELS)] == pytest.approx(0.002)
    assert s[(f"{P}_header_duration_seconds_sum", LABELS)] == pytest.approx(0.1)
    assert s[(f"{P}_response_duration_seconds_sum", LABELS)] == pytest.approx(0.3)


def test_requests_count_the_client_status_not_the_upstream_statuses() -> None:
    # monitor.lua sends "status = ngx.var.status" and leaves "--upstreamStatus =
    # ngx.var.upstream_status" commented out: a retried request (a refused try logged 502, then
    # a 200) counts once, under 200; a failed one once, under the 502 the client got.
    m = Metrics()
    m.observe(rec(upstreams=(("10.0.0.1", 8080), ("10.0.0.2", 8080)),
                  upstream_statuses=(502, 200), upstream_status=200))
    m.observe(rec(status=502, upstreams=(("10.0.0.1", 8080),), upstream_statuses=(502,),
                  upstream_status=502, upstream_first_byte=None, upstream_header_time=None))
    s = samples(m)
    assert s[(f"{P}_requests", LABELS)] == 1
    assert s[(f"{P}_requests", LABELS_502)] == 1
    assert sum(v for (name, _), v in s.items() if name == f"{P}_requests") == 2
