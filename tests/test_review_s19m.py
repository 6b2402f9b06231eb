"""Metrics review (session 19, Q19m): the exposition of an application's OpenMetrics-only
types, the series of hosts no longer served, and the label sets under a hostile client."""

from __future__ import annotations

import asyncio
import gzip
import random
import re

import pytest
from prometheus_client import Enum, Info, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from ingresslib._metrics import Metrics, MetricsServer

from _proxy_harness import ingress_yaml, routed_pair, status_of
from _records import rec

P = "nginx_ingress_controller"

#: The types of the text format 0.0.4. Prometheus's own parser
#: (model/textparse/promparse.go) accepts "counter", "gauge", "histogram", "summary",
#: "untyped" and answers anything else with `fmt.Errorf("invalid metric type %q", s)`, which
#: fails the whole scrape.
TEXT_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _type_lines(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M)}


def _family_of(sample: str, families: dict[str, str]) -> str | None:
    """The declared family a sample line belongs to, as promparse/expfmt read it."""
    if sample in families:
        return sample
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample[: -len(suffix)]
        if sample.endswith(suffix) and families.get(base) in ("histogram", "summary"):
            return base
    return None


def _check_text_format(text: str) -> None:
    families = _type_lines(text)
    bad = {n: t for n, t in families.items() if t not in TEXT_TYPES}
    assert not bad, f"types a Prometheus server refuses: {bad}"
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        assert name is not None
        assert _family_of(name.group(), families) is not None, f"sample of no family: {line}"


# --- an application's metrics in ``metrics.registry`` -------------------------------------------


def test_an_info_metric_of_the_application_is_a_gauge_named_like_its_sample() -> None:
    # docs/observability.md: "metrics.registry is a normal CollectorRegistry" (an application
    # exposes its own metrics through it). render() wrote "# TYPE build info", a type the
    # text format does not have: Prometheus refuses the whole scrape.
    m = Metrics()
    Info("build", "Build information", registry=m.registry).info({"version": "1.2"})
    text = m.render().decode()
    assert "# TYPE build_info gauge\n" in text
    assert "# HELP build_info Build information\n" in text
    assert 'build_info{version="1.2"} 1.0\n' in text
    _check_text_format(text)
    fams = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert fams["build_info"] == "gauge"


def test_an_enum_metric_of_the_application_is_a_gauge() -> None:
    m = Metrics()
    Enum("state", "Task state", states=["idle", "busy"], registry=m.registry).state("busy")
    text = m.render().decode()
    assert "# TYPE state gauge\n" in text
    assert 'state{state="busy"} 1.0\n' in text
    _check_text_format(text)


class _GaugeHistograms(Collector):
    def collect(self):  # type: ignore[no-untyped-def]
        yield GaugeHistogramMetricFamily("queue_wait", "Waiting", buckets=[("1", 2), ("+Inf", 3)],
                                         gsum_value=4.0)


def test_every_type_line_is_one_of_the_text_format() -> None:
    m = Metrics()
    Info("build", "Build information", registry=m.registry).info({"version": "1.2"})
    Enum("state", "Task state", states=["idle", "busy"], registry=m.registry)
    m.registry.register(_GaugeHistograms())
    m.observe(rec())
    types = _type_lines(m.render().decode())
    assert set(types.values()) <= TEXT_TYPES
    assert types["queue_wait"] == "histogram"  # as prometheus-client's generate_latest
    assert types[f"{P}_requests"] == "counter"  # ours unchanged


def test_our_own_exposition_keeps_to_the_text_format() -> None:
    m = Metrics()
    m.observe(rec())
    m.observe(rec(host="bar.test", status=503, method="BREW", canary=True))
    m.reload_succeeded(1700000000.0, config_hash=42)
    m.watch_event("Ingress", "ADDED")
    _check_text_format(m.render().decode())


# --- series of hosts no longer served -----------------------------------------------------------


def _series(m: Metrics) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for f in text_string_to_metric_families(m.render().decode()):
        if f.name == f"{P}_requests":
            out.extend(s.labels for s in f.samples)
    return out


def test_unrouted_series_of_a_host_no_longer_served_are_dropped() -> None:
    # A preview environment: its host answers 404 for paths no rule covers (ingress=""),
    # then the preview's Ingress goes. set_ingresses keeps ingress="" series, so without
    # this the preview's host stayed in the exposition for ever, one host per preview.
    m = Metrics()
    m.set_hosts({"shop.test", "pr1.shop.test"})
    m.observe(rec(host="pr1.shop.test", ingress="shop/pr1", rule_path="/app"))
    m.observe(rec(host="pr1.shop.test", status=404, ingress=None, service=None,
                  namespace=None, rule_path=None))
    m.observe(rec(host="shop.test", status=404, ingress=None, service=None, namespace=None,
                  rule_path=None))
    assert {s["host"] for s in _series(m)} == {"shop.test", "pr1.shop.test"}
    # The reload that removed the preview, in serve's order.
    m.set_hosts({"shop.test"})
    m.set_ingresses(["shop/web"])
    assert [(s["host"], s["ingress"], s["status"]) for s in _series(m)] == [
        ("shop.test", "", "404")]


def test_set_hosts_keeps_what_set_ingresses_owns() -> None:
    # The host filter only ends ingress="" series: one an Ingress took goes with its Ingress
    # (set_ingresses, ingress-nginx's RemoveMetrics), not with a host; host="" (no Host
    # header, recorded before the hosts were known) has no host to go with.
    m = Metrics()
    m.observe(rec(host="a.test", ingress="shop/web"))
    m.observe(rec(host="", status=404, ingress=None, service=None, namespace=None,
                  rule_path=None))
    m.set_hosts({"b.test"})
    assert sorted((s["host"], s["ingress"]) for s in _series(m)) == [("", ""), ("a.test", "web")]


def test_without_per_host_set_hosts_drops_nothing() -> None:
    m = Metrics(per_host=False)
    m.observe(rec(status=404, ingress=None, service=None, namespace=None, rule_path=None))
    m.set_hosts({"b.test"})
    assert [s["status"] for s in _series(m)] == ["404"]


def test_a_served_hosts_uncovered_path_through_the_core() -> None:
    pair = routed_pair(ingress_yaml("pr1", "pr1.shop.test", path="/app"))
    m = Metrics()
    m.set_hosts({"pr1.shop.test"})
    answer = pair.send(b"GET /favicon.ico HTTP/1.1\r\nHost: pr1.shop.test\r\n\r\n")
    assert status_of(answer) == 404
    for r in pair.records:
        m.observe(r)
    assert [(s["host"], s["ingress"]) for s in _series(m)] == [("pr1.shop.test", "")]
    m.set_hosts(set())
    m.set_ingresses([])
    assert _series(m) == []


# --- a hostile client ---------------------------------------------------------------------------


def _hostile_requests(seed: int, n: int) -> list[bytes]:
    rnd = random.Random(seed)

    def token(k: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
        return "".join(rnd.choice(alphabet) for _ in range(k))

    out = []
    for _ in range(n):
        method = rnd.choice(["GET", "POST", "PROPFIND", "M-SEARCH",
                             token(6, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-")])  # nginx's method bytes
        out.append(f"{method} /{token(8)}/{token(5)}?{token(4)} HTTP/1.1\r\n"
                   f"Host: {token(10)}.example\r\nContent-Length: 0\r\n\r\n".encode())
    return out


def test_random_hosts_methods_and_paths_make_a_bounded_number_of_series() -> None:
    # A catch-all rule takes any Host; every request has a new host, path and (often) method.
    # ingress-nginx's socket.go: "if sc.metricsPerHost && !sc.hosts.Has(stats.Host) {
    # continue }"; the path label is the location's (the rule's) path. Count the series.
    n = 300
    known, unknown = Metrics(), Metrics(max_hosts=20)
    known.set_hosts(set())  # hosts_of a table whose only rule has no host
    pair = routed_pair(ingress_yaml("all", ""))
    for req in _hostile_requests(19, n):
        pair.send(req)
    assert len(pair.records) == n
    for r in pair.records:
        known.observe(r)
        unknown.observe(r)
    assert _series(known) == []
    series = _series(unknown)
    assert sum(1 for _ in series) == len({tuple(sorted(s.items())) for s in series})
    assert {s["path"] for s in series} == {"/"}
    assert {s["method"] for s in series} <= {"GET", "POST", "OTHER"}
    hosts = {s["host"] for s in series}
    assert len(hosts) == 21 and "" in hosts  # 20 names, then host=""
    # 20 named hosts x at most 3 methods, plus host="" x 3: whatever n is.
    assert len(series) <= 21 * 3
    assert len(unknown._requests.series) == len(series)


# --- the work of a scrape -----------------------------------------------------------------------


def _many(m: Metrics, n: int) -> Metrics:
    for i in range(n):
        m.observe(rec(host=f"h{i % 7}.test", rule_path=f"/p{i}", ingress=f"shop/i{i % 3}",
                      status=(200, 404, 503)[i % 3], canary=i % 5 == 0))
    return m


def test_a_scrape_escapes_each_series_labels_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A series is 93 samples (the counter and seven histograms of 11 or 10 or 7 buckets, each
    # with _count and _sum); render() escaped, sorted and joined the eight label values of
    # every sample: 10,000 series took seconds of the GIL per scrape (see the report). Count
    # the escapes: once per label of a series, plus the latency summary's few samples.
    import ingresslib._metrics as mod

    calls = [0]
    real = mod._escape_label

    def counting(v: str) -> str:
        calls[0] += 1
        return real(v)

    m = _many(Metrics(), 60)
    series = len(m._requests.series)
    # Per latency series: 3 quantiles (4 labels and quantile), _count and _sum (4 labels).
    latency_escapes = len(m._requests.latency) * (3 * 5 + 2 * 4)
    monkeypatch.setattr(mod, "_escape_label", counting)
    m.render()
    assert calls[0] <= series * 8 + latency_escapes


def test_the_request_families_read_as_sample_by_sample_formatting() -> None:
    from ingresslib._metrics import _write_family

    for m in (_many(Metrics(), 40), _many(Metrics(per_host=False, prefix="ingresslib"), 40),
              _many(Metrics(time_buckets=(-1.0, 0.25, 1e6)), 10), Metrics()):
        m.observe(rec(host='q"\\\n.test', rule_path='/a"b\\c\nd'))
        out: list[str] = []
        for fam in m._requests.collect():  # this thread is not rendering: the samples
            _write_family(fam, m._go_counters, out)
        generic = "".join(out)
        assert m._requests.text() == generic
        assert generic in m.render().decode()


def test_another_thread_collects_samples_while_a_render_runs() -> None:
    # The text shortcut is for render()'s own thread: prometheus-client's generate_latest,
    # or any reader of the registry in another thread meanwhile, still gets the families.
    import threading

    m = _many(Metrics(), 5)
    seen: list[str] = []

    class Probe(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            t = threading.Thread(target=lambda: seen.extend(
                f.name for f in m._requests.collect()))
            t.start()
            t.join()
            return iter(())

    m.registry.register(Probe())
    text = m.render().decode()
    assert seen[0] == f"{P}_requests" and f"{P}_request_duration_seconds" in seen
    assert f"{P}_requests{{" in text
    assert f"{P}_requests_total" in generate_latest(m.registry).decode()


# --- the /metrics server: gzip ------------------------------------------------------------------


async def _scrape(port: int, *headers: bytes, method: bytes = b"GET",
                  path: bytes = b"/metrics") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 + b"".join(h + b"\r\n" for h in headers) + b"\r\n")
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), fields, body


@pytest.mark.asyncio
async def test_a_scrape_that_accepts_gzip_gets_gzip() -> None:
    # ingress-nginx serves /metrics with promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
    # (pkg/metrics/handler.go): compression on, and promhttp's decorateWriter compresses when
    # 'part == "gzip" || strings.HasPrefix(part, "gzip;")'. Prometheus sends
    # "Accept-Encoding: gzip" with every scrape; the exposition of 10,000 series is
    # ~160 MB as text and ~3 MB compressed.
    m = _many(Metrics(), 30)
    server = MetricsServer(m, "127.0.0.1", 0)
    port = await server.start()
    try:
        status, fields, body = await _scrape(port, b"Accept-Encoding: gzip")
        assert status == 200
        assert fields["content-encoding"] == "gzip"
        assert int(fields["content-length"]) == len(body)
        assert gzip.decompress(body) == m.render()
        assert len(body) * 5 < len(m.render())
        for accept in (b"Accept-Encoding: deflate, GZIP;q=0.5, *;q=0.1",
                       b"Accept-Encoding: br, gzip"):
            status, fields, body = await _scrape(port, accept)
            assert fields.get("content-encoding") == "gzip", accept
            assert gzip.decompress(body) == m.render()
        status, fields, body = await _scrape(port, b"Accept-Encoding: gzip", method=b"HEAD")
        assert status == 200 and body == b"" and fields["content-encoding"] == "gzip"
    finally:
        await server.close()


@pytest.mark.asyncio
async def test_no_gzip_unless_asked() -> None:
    m = _many(Metrics(), 3)
    server = MetricsServer(m, "127.0.0.1", 0)
    port = await server.start()
    try:
        for extra in ((), (b"Accept-Encoding: identity",), (b"Accept-Encoding: gzip;q=0",),
                      (b"Accept-Encoding: xgzip, gzipx",)):
            status, fields, body = await _scrape(port, *extra)
            assert status == 200 and "content-encoding" not in fields, extra
            assert body == m.render()
        # /healthz is a word: never compressed.
        status, fields, body = await _scrape(port, b"Accept-Encoding: gzip", path=b"/healthz")
        assert (status, body) == (200, b"ok") and "content-encoding" not in fields
    finally:
        await server.close()
