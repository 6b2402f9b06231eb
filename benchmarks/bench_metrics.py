"""Per-request cost of the observability hooks: ``Metrics.observe`` and one access-log entry.

    .venv/bin/python -m pytest benchmarks/bench_metrics.py --benchmark-only -q

docs/observability.md quotes these figures ("Embedding"). Every case handles the same stream of
1,000 finished-request records (``RequestRecord``, as the proxy core emits them): 50 rules on 10
hosts, Zipf-like popularity, mostly 200s with some 404/304/503 and a few other methods, so the
metrics see a realistic number of label sets (a few hundred series), each round walking the
whole stream. Figures are steady state: one untimed pass first creates every series.

Cases:

* ``observe, set_hosts`` - ``Metrics.observe`` as ``ingresslib serve`` runs it (served hosts
  known: ``Metrics.set_hosts``);
* ``observe, no set_hosts`` - an embedding that never calls ``set_hosts`` (the ``max_hosts``
  bookkeeping on every request);
* ``prometheus-client labels`` - the same series the plain prometheus-client way
  (``.labels(...).observe()`` per metric), the comparison the docs quote, in the same run;
* ``access log, no handler`` - ``AccessLog()(record)`` with nobody listening on
  ``ingresslib.access`` (the library's default: nothing is built);
* ``access log, text`` / ``access log, json`` - through ``configure_access_log`` (a
  ``StreamHandler``) writing to ``os.devnull``: formatting and the ``logging`` machinery, not
  the disk.

Reported: ``us_per_request``, pytest-benchmark's median round divided by the records per round,
and ``us_quietest_round``, the fastest round the same way: on a shared machine the minimum moves
far less with the load than the median does (see README.md, "Session 5").
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ingresslib import _accesslog
from ingresslib._metrics import Metrics
from ingresslib.proxy import RequestRecord

PER_ROUND = 1000
HOSTS = [f"shop{i}.example.com" for i in range(10)]
RULES = [(HOSTS[i % 10], f"/svc{i}") for i in range(50)]


def records(n: int = PER_ROUND, seed: int = 3) -> list[RequestRecord]:
    rnd = random.Random(seed)
    weights = [1 / (k + 1) ** 1.1 for k in range(len(RULES))]
    out = []
    for i in range(n):
        host, rule = rnd.choices(RULES, weights)[0]
        status = rnd.choices([200, 404, 304, 503], [90, 5, 4, 1])[0]
        method = rnd.choices(["GET", "POST", "HEAD", "PUT"], [80, 15, 3, 2])[0]
        start = 1000.0 + i
        out.append(RequestRecord(
            method=method, host=host, path=f"{rule}/items/{i % 97}", query="page=2",
            rule_path=rule, ingress=f"shop/{rule[1:]}", service=rule[1:], namespace="shop",
            canary=False, status=status, bytes_in=420, bytes_out=rnd.randrange(200, 60_000),
            upstreams=(("10.0.0.1", 8080),), upstream_status=status, upstream_statuses=(status,),
            start=start, upstream_connect=start + 0.0004,
            upstream_first_byte=start + rnd.uniform(0.001, 0.2), end=start + rnd.uniform(0.2, 0.4),
            request_id=f"{i:032x}", client_ip="192.0.2.7", http_version="1.1",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0", referer=None,
            upstream_response_length=1234, service_port=80,
            request_line=f"{method} {rule}/items/{i % 97}?page=2 HTTP/1.1",
            body_bytes_out=1234, upstream_connect_time=0.0004,
            upstream_header_time=0.02, upstream_response_time=0.03))
    return out


@pytest.fixture
def access_logger() -> Iterator[Callable[[str | None], None]]:
    """Install (or not) the CLI's access-log handler on os.devnull; undo it afterwards."""
    log = logging.getLogger("ingresslib.access")
    state = (log.level, log.propagate, log.disabled, list(log.handlers))
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below

    def install(fmt: str | None) -> None:
        if fmt is not None:
            _accesslog.configure_access_log(sink, fmt)  # type: ignore[arg-type]

    try:
        yield install
    finally:
        for h in _accesslog._installed:
            log.removeHandler(h)
        _accesslog._installed.clear()
        log.setLevel(state[0])
        log.propagate, log.disabled = state[1], state[2]
        log.handlers[:] = state[3]
        sink.close()


def _observer(case: str) -> Callable[[RequestRecord], None]:
    if case == "prometheus-client labels":
        return _naive()
    m = Metrics()
    if case == "observe, set_hosts":
        m.set_hosts(HOSTS)
    return m.observe


def _naive() -> Callable[[RequestRecord], None]:
    """The same series kept the plain prometheus-client way (``.labels(...).observe()`` per
    metric and request, as ingresslib did before ``_RequestCollector``): the comparison the
    docs quote, timed in the same run so that the machine's load cancels out of the ratio."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, Summary

    from ingresslib import _metrics

    reg = CollectorRegistry()
    labels = _metrics._REQUEST_LABELS
    ns = "nginx_ingress_controller"
    requests = Counter("requests", "", labels, namespace=ns, registry=reg)
    times = [Histogram(n, "", labels, namespace=ns, registry=reg, buckets=_metrics.TIME_BUCKETS)
             for n in ("request_duration_seconds", "connect_duration_seconds",
                       "header_duration_seconds", "response_duration_seconds")]
    sizes = [Histogram(n, "", labels, namespace=ns, registry=reg, buckets=b)
             for n, b in (("request_size", _metrics.LENGTH_BUCKETS),
                          ("response_size", _metrics.LENGTH_BUCKETS),
                          ("bytes_sent", _metrics.SIZE_BUCKETS))]
    latency = Summary("ingress_upstream_latency_seconds", "", _metrics._LATENCY_LABELS,
                      namespace=ns, registry=reg)

    def observe(r: RequestRecord) -> None:
        key = (f"{r.status:03d}", r.method, r.rule_path or "", r.namespace or "",
               (r.ingress or "").partition("/")[2], r.service or "", "", r.host)
        requests.labels(*key).inc()
        for h, v in zip(times, (r.end - r.start, r.upstream_connect_time or 0.0,
                                r.upstream_header_time or 0.0, r.upstream_response_time or 0.0)):
            h.labels(*key).observe(v)
        for h, v in zip(sizes, (r.bytes_in, r.bytes_out, r.bytes_out)):
            h.labels(*key).observe(v)
        latency.labels(key[4], key[3], key[5], "").observe(r.upstream_connect_time or 0.0)

    observe.registry = reg  # type: ignore[attr-defined]
    return observe


CASES = ["observe, set_hosts", "observe, no set_hosts", "prometheus-client labels",
         "access log, no handler",
         "access log, text", "access log, json"]


@pytest.mark.parametrize("case", CASES)
def test_observability_hook(benchmark: Any, record: Any, case: str,
                            access_logger: Callable[[str | None], None]) -> None:
    stream = records()
    if not case.startswith("access log"):
        hook = _observer(case)
    else:
        access_logger({"access log, text": "text", "access log, json": "json"}.get(case))
        hook = _accesslog.AccessLog()

    def run() -> None:
        for r in stream:
            hook(r)

    run()  # untimed: every series exists, every lazy import done
    if case.startswith("observe"):
        assert b"nginx_ingress_controller_requests{" in hook.__self__.render()  # type: ignore[attr-defined]
    elif case == "prometheus-client labels":
        from prometheus_client import generate_latest

        assert b"nginx_ingress_controller_requests_total{" in generate_latest(
            hook.registry)  # type: ignore[attr-defined]
    benchmark.group = "observability hooks"
    benchmark.extra_info.update(case=case, records_per_round=PER_ROUND)
    benchmark.pedantic(run, rounds=30, warmup_rounds=2)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    us = benchmark.stats.stats.median * 1e6 / PER_ROUND
    quiet = benchmark.stats.stats.min * 1e6 / PER_ROUND
    benchmark.extra_info.update(us_per_request=round(us, 2), us_quietest_round=round(quiet, 2))
    record(what=f"observability {case}", us_per_request=round(us, 2),
           us_quietest_round=round(quiet, 2))
