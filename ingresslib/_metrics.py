"""Prometheus metrics named like ingress-nginx's, and a tiny ``/metrics`` + ``/healthz`` server.

SEMANTICS §12: "Prometheus metrics named like ingress-nginx's (``…_requests``,
``…_request_duration_seconds``, ``…_response_size``, ``…_upstream_latency_seconds``, labels
``ingress``, ``namespace``, ``service``, ``status``, ``method``, ``host``, ``path`` = rule path,
``canary``)".

The names, label sets and buckets follow ingress-nginx's collectors
(``internal/ingress/metric/collectors/socket.go`` and ``controller.go``): namespace
``nginx_ingress_controller`` by default so existing dashboards keep working; pass
``prefix="ingresslib"`` for names of our own. Every :class:`Metrics` owns a private
:class:`~prometheus_client.CollectorRegistry`: two servers (or an embedding application with its
own metrics) in one process never share or collide.

prometheus-client exposes a counter ``requests`` as ``requests_total`` (the OpenMetrics rule), while
the Go client that ingress-nginx uses writes it as ``requests``. With ``go_names=True`` (the
default) :meth:`Metrics.render` writes the ingress-nginx counters under their Go names and leaves
out the ``_created`` series, which is what dashboards written for ingress-nginx query.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import gzip
import hashlib
import logging
import math
import random
import re
import threading
import time
from http import HTTPStatus
from bisect import bisect_left
from decimal import Decimal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

import h11
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString as _untyped_float

from ._accesslog import upstream_names, upstream_times
from ._models import Ingress
from ._resources import Resources
from ._table import _age_key, _is_canary, alias_servers
from .proxy._actions import RequestRecord

__all__ = [
    "Metrics",
    "MetricsServer",
    "CONTENT_TYPE",
    "TIME_BUCKETS",
    "LENGTH_BUCKETS",
    "SIZE_BUCKETS",
    "certificate_not_after",
    "certificates_of",
    "hosts_of",
]

_log = logging.getLogger("ingresslib.metrics")

#: Go's float formatting, as prometheus-client writes values (untyped upstream).
_go_float = cast(Callable[[float], str], _untyped_float)

#: Prometheus text exposition format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# ingress-nginx's defaults (cmd/nginx/flags.go: --time-buckets, --length-buckets, --size-buckets):
# prometheus.DefBuckets, LinearBuckets(10, 10, 10) and ExponentialBuckets(10, 10, 7).
TIME_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LENGTH_BUCKETS: tuple[float, ...] = tuple(float(10 * i) for i in range(1, 11))
SIZE_BUCKETS: tuple[float, ...] = tuple(float(10 ** i) for i in range(1, 8))

# socket.go: requestTags = status, method, path, namespace, ingress, service, canary (+ host with
# --metrics-per-host, on by default).
_REQUEST_LABELS = ("status", "method", "path", "namespace", "ingress", "service", "canary", "host")
# socket.go: the deprecated upstream latency summary has a smaller label set.
_LATENCY_LABELS = ("ingress", "namespace", "service", "canary")

#: ingress-nginx's catch-all server's name (``defServerName``), the ``host`` label of a
#: request that named no host once the served hosts are known.
_DEFAULT_SERVER = "_"

# A hostile client can send any token as a method; the label keeps a bounded set (cardinality).
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))

#: A lone surrogate: a ``str`` that cannot be written as UTF-8 (``"\udcff"``, what
#: ``surrogateescape`` decodes the byte 0xff to). A label value holding one (a record built by
#: other code than the core) would make the whole exposition fail to encode, every scrape after
#: it too; it is written as U+FFFD instead, what ingress-nginx's collector reads in place of
#: bytes that are not UTF-8 (socket.go ``json.Unmarshal``: "invalid UTF-8 or invalid UTF-16
#: surrogate pairs are not treated as an error. Instead, they are replaced by the Unicode
#: replacement character U+FFFD").
_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _utf8_key(key: tuple[str, ...]) -> tuple[str, ...]:
    """``key`` itself when every label value is valid UTF-8, else a copy with U+FFFD for each
    lone surrogate (two such values then count in one series, as ingress-nginx's)."""
    try:
        "".join(key).encode("utf-8")
    except UnicodeEncodeError:
        return tuple(_utf8(v) for v in key)
    return key


class _Hist:
    """One histogram series: per-bucket (not cumulative) counts, the last one is +Inf."""

    __slots__ = ("counts", "total")

    def __init__(self, n: int) -> None:
        self.counts = [0] * (n + 1)
        self.total = 0.0


# socket.go: ingress_upstream_latency_seconds is a Summary with "defObjectives = {0.5: 0.05,
# 0.9: 0.01, 0.99: 0.001}" and client_golang's defaults DefMaxAge = 10 min, DefAgeBuckets = 5.
_OBJECTIVES = (0.5, 0.9, 0.99)
_AGE_BUCKET_SECONDS = 120.0
_AGE_BUCKETS = 5
#: Samples kept per age bucket (a uniform reservoir beyond that): memory stays bounded.
_RESERVOIR = 1024


class _Window:
    """Recent observations of one summary series: ``_AGE_BUCKETS`` slots of
    ``_AGE_BUCKET_SECONDS`` each, every slot a bounded uniform sample of what it saw."""

    __slots__ = ("buckets", "slots", "seen")

    def __init__(self) -> None:
        self.buckets: list[list[float]] = [[] for _ in range(_AGE_BUCKETS)]
        self.slots = [-_AGE_BUCKETS] * _AGE_BUCKETS
        self.seen = [0] * _AGE_BUCKETS

    def add(self, v: float, now: float) -> None:
        slot = int(now // _AGE_BUCKET_SECONDS)
        i = slot % _AGE_BUCKETS
        if self.slots[i] != slot:
            self.buckets[i] = []
            self.slots[i] = slot
            self.seen[i] = 0
        self.seen[i] += 1
        b = self.buckets[i]
        if len(b) < _RESERVOIR:
            b.append(v)
        else:
            j = random.randrange(self.seen[i])
            if j < _RESERVOIR:
                b[j] = v

    def quantiles(self, now: float) -> list[float]:
        """The objectives over the last ten minutes; NaN when nothing was seen (as Go)."""
        slot = int(now // _AGE_BUCKET_SECONDS)
        weighted: list[tuple[float, float]] = []
        for b, at, seen in zip(self.buckets, self.slots, self.seen):
            if b and 0 <= slot - at < _AGE_BUCKETS:
                w = seen / len(b)  # a sampled slot's values stand for all it saw
                weighted.extend((v, w) for v in b)
        if not weighted:
            return [math.nan] * len(_OBJECTIVES)
        weighted.sort()
        total = sum(w for _, w in weighted)
        out = []
        for q in _OBJECTIVES:
            # The value of rank ceil(q * n), the rank client_golang's stream targets.
            target = q * total - 1e-9
            acc = 0.0
            for v, w in weighted:
                acc += w
                if acc >= target:
                    break
            out.append(v)
        return out


class _Series:
    """Every per-request metric of one label tuple."""

    __slots__ = ("requests", "hists")

    def __init__(self, sizes: Sequence[int]) -> None:
        self.requests = 0
        self.hists = [_Hist(n) for n in sizes]


# (name, help, which buckets: 0 time, 1 length, 2 size), in exposition order; socket.go's names.
_HISTOGRAMS = (
    ("request_duration_seconds",
     "The request processing time in seconds (first byte read to last byte sent)", 0),
    ("connect_duration_seconds",
     "The time spent on establishing a connection with the upstream server", 0),
    ("header_duration_seconds",
     "The time spent on receiving first header from the upstream server", 0),
    ("response_duration_seconds",
     "The time spent on receiving the response from the upstream server", 0),
    ("request_size", "The request length (including request line, header, and request body)", 1),
    ("response_size", "The response length (including status line, header, and body)", 1),
    ("bytes_sent", "DEPRECATED The number of bytes sent to a client", 2),
)
_REQ_DUR, _CONNECT, _HEADER, _RESPONSE, _REQ_SIZE, _RESP_SIZE, _BYTES_SENT = range(7)
_REQUESTS = "requests"
_LATENCY = "ingress_upstream_latency_seconds"
#: The names ``exclude_socket_metrics`` takes: socket.go's metrics, each built by
#: ``counterMetric``/``histogramMetric``/``summaryMetric``, which leave out an excluded one.
_SOCKET_METRICS = frozenset((_REQUESTS, *(name for name, _, _ in _HISTOGRAMS), _LATENCY))
#: socket.go NewSocketCollector: "remove potential nginx_ingress_controller prefix from the
#: metric name" (``strings.TrimPrefix``) before a name is looked up.
_GO_PREFIX = "nginx_ingress_controller_"


def _excluded_metrics(names: Iterable[str], prefix: str) -> frozenset[str]:
    """The socket metrics ``names`` leave out (``exclude_socket_metrics``), each with or
    without ``nginx_ingress_controller_`` (or ``prefix``) in front.

    A name that is none of them is not an error: ingress-nginx looks each metric up in the set
    and nothing else (socket.go ``containsMetric``), and its e2e test passes
    ``--exclude-socket-metrics=non_existing_metric_does_not_affect_existing_metrics`` to a
    controller that starts and exports everything (test/e2e/metrics/metrics.go). A deployment's
    flags copied over must start here too; a warning names it, as a typo excludes nothing."""
    if isinstance(names, str):
        # Read a character at a time, it excluded nothing, with a warning per letter.
        raise TypeError(f"exclude_socket_metrics takes names, such as ({names!r},), not one "
                        "str")
    out = set()
    for name in names:
        short = name.removeprefix(_GO_PREFIX)
        if short == name and prefix:
            short = name.removeprefix(f"{prefix}_")
        if short in _SOCKET_METRICS:
            out.add(short)
        else:
            _log.warning("metrics: exclude_socket_metrics: %r is no per-request metric (%s); "
                         "ignored", name, ", ".join(sorted(_SOCKET_METRICS)))
    return frozenset(out)


class _RequestCollector(Collector):
    """The per-request metrics as a custom collector.

    prometheus-client's labelled histograms take a lock and walk the buckets in Python for each
    observation (about 30 µs for the eight metrics of one request, measured); here a request is a
    dict lookup and a bisect per histogram, on the event loop thread that owns the state. A scrape
    from another thread may see one request half counted, never a corrupt value.
    """

    def __init__(
        self, ns: str, labels: Sequence[str], time_b: tuple[float, ...],
        length_b: tuple[float, ...], size_b: tuple[float, ...],
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        self.ns = ns
        #: The families not exported (``exclude_socket_metrics``). Left out when written, not
        #: when counted: the request path stays as it is whether any is excluded or not.
        self.excluded = excluded
        self.labels = list(labels)
        self.bounds = (time_b, length_b, size_b)
        self.which = tuple(self.bounds[w] for _, _, w in _HISTOGRAMS)
        self.sizes = tuple(len(b) for b in self.which)
        self.series: dict[tuple[str, ...], _Series] = {}
        #: ``ingress_upstream_latency_seconds`` (a summary: count and sum) by its 4 labels.
        self.latency: dict[tuple[str, ...], list[float]] = {}
        #: ... and its recent observations, for the quantiles.
        self.latency_window: dict[tuple[str, ...], _Window] = {}
        self.clock: Callable[[], float] = time.monotonic
        #: ``on`` while :meth:`Metrics.render` runs in this thread: :meth:`collect` then yields
        #: its families as text (:meth:`text`), not as samples to be formatted one by one.
        self.direct = threading.local()

    def observe(self, key: tuple[str, ...], lat_key: tuple[str, ...], r: RequestRecord) -> None:
        s = self.series.get(key)
        if s is None:
            # A new series (only then: the hot path is the lookup) keeps label values that
            # can be written (_SURROGATE).
            key = _utf8_key(key)
            lat_key = _utf8_key(lat_key)
            s = self.series.get(key)
            if s is None:
                s = self.series[key] = _Series(self.sizes)
        s.requests += 1
        h = s.hists
        which = self.which
        start = r.start

        def put(i: int, v: float) -> None:
            hist = h[i]
            hist.counts[bisect_left(which[i], v)] += 1  # le is inclusive: first bound >= v
            hist.total += v

        put(_REQ_DUR, max(r.end - start, 0.0))
        put(_REQ_SIZE, r.bytes_in)
        put(_RESP_SIZE, r.bytes_out)
        put(_BYTES_SENT, r.bytes_out)
        connected = r.upstream_connect
        connect: float | None = None
        if connected is not None:
            took = r.upstream_connect_time
            # A record without the connect time (one not made by the core): from the start of
            # the request, the closest bound it has.
            connect = max(connected - start if took is None else took, 0.0)
            put(_CONNECT, connect)
        # ingress-nginx's monitor.lua: header_duration_seconds <- $upstream_header_time,
        # response_duration_seconds <- $upstream_response_time, both from the upstream
        # attempt's start (the record's last try; a record without them: see upstream_times).
        header, response = upstream_times(r)
        if header is not None:
            put(_HEADER, header)
        if response is not None:
            put(_RESPONSE, response)
        # monitor.lua: "upstreamLatency = tonumber(ngx.var.upstream_connect_time)", and
        # socket.go observes that one value in both connect_duration_seconds and the
        # deprecated ingress_upstream_latency_seconds (not the time to the first byte).
        if connect is not None:
            lat = self.latency.get(lat_key)
            if lat is None:
                lat = self.latency[lat_key] = [0.0, 0.0]
            lat[0] += 1
            lat[1] += connect
            window = self.latency_window.get(lat_key)
            if window is None:
                window = self.latency_window[lat_key] = _Window()
            window.add(connect, self.clock())

    def retain(self, served: frozenset[tuple[str, str]]) -> None:
        """Drop the series of Ingresses not in ``served`` (``(namespace, name)`` pairs); those
        of requests no Ingress took (``ingress=""``) stay. New dicts, swapped in whole: a
        scrape running meanwhile reads the old ones."""
        def kept(namespace: str, ingress: str) -> bool:
            return not ingress or (namespace, ingress) in served

        # key: status, method, path, namespace, ingress, ...; latency: ingress, namespace, ...
        self.series = {k: v for k, v in self.series.items() if kept(k[3], k[4])}
        self.latency = {k: v for k, v in self.latency.items() if kept(k[1], k[0])}
        self.latency_window = {k: v for k, v in self.latency_window.items()
                               if kept(k[1], k[0])}

    def retain_hosts(self, served: frozenset[str]) -> None:
        """Drop the series no Ingress took (``ingress=""``) whose ``host`` is not in ``served``
        (the last label of a per-host key). ingress-nginx counts such a request (a served
        host's path no rule covers) under the host's first Ingress, whose ``RemoveMetrics``
        drops it with that Ingress; here it has no Ingress, so the host going is what ends it.
        New dict, swapped in whole, as :meth:`retain`."""
        self.series = {k: v for k, v in self.series.items()
                       if k[4] or not k[7] or k[7] in served}

    def collect(self) -> Iterator[Metric]:
        if getattr(self.direct, "on", False):
            yield _RequestText(self.text())
            return
        ns = self.ns
        series = list(self.series.items())
        excluded = self.excluded
        if _REQUESTS not in excluded:
            c = CounterMetricFamily(f"{ns}_requests", "The total number of client requests",
                                    labels=self.labels)
            for key, s in series:
                c.add_metric(key, s.requests)
            yield c
        for i, (name, doc, _) in enumerate(_HISTOGRAMS):
            if name in excluded:
                continue
            fam = HistogramMetricFamily(f"{ns}_{name}", doc, labels=self.labels)
            bounds = [_go_float(b) for b in self.which[i]] + ["+Inf"]
            for key, s in series:
                hist = s.hists[i]
                acc = 0
                buckets = []
                for le, n in zip(bounds, hist.counts):
                    acc += n
                    buckets.append((le, float(acc)))
                if acc:
                    fam.add_metric(key, buckets, hist.total)
            yield fam
        if _LATENCY not in excluded:
            yield self._latency_family()

    def _latency_family(self) -> Metric:
        ns = self.ns
        lat = SummaryMetricFamily(
            f"{ns}_ingress_upstream_latency_seconds",
            "DEPRECATED Upstream service latency per Ingress",
            labels=list(_LATENCY_LABELS))
        now = self.clock()
        name = f"{ns}_ingress_upstream_latency_seconds"
        for lkey, (count, total) in list(self.latency.items()):
            window = self.latency_window.get(lkey)
            if window is not None:
                labels = dict(zip(_LATENCY_LABELS, lkey))
                for q, v in zip(_OBJECTIVES, window.quantiles(now)):
                    lat.add_sample(name, dict(labels, quantile=_go_float(q)), v)
            lat.add_metric(lkey, int(count), total)
        return lat

    def text(self) -> str:
        """:meth:`collect`'s families in :meth:`Metrics.render`'s exposition (Go names), the
        same bytes its sample-by-sample formatting writes, built from the series directly.

        A series is 1 + 7 x (buckets + 3) samples (93 with the default buckets): formatted
        one by one, each sample's eight label values were escaped, sorted and joined again,
        and 10,000 series took 24-26 s of the GIL the proxy's loop needs per scrape on the
        shared 2-core box (Prometheus's default scrape timeout is 10 s); 3.8-4 s here, where
        each series' label text is built once and a bucket line is one f-string."""
        ns = self.ns
        series = list(self.series.items())
        names = self.labels
        order = sorted(range(len(names)), key=names.__getitem__)
        split = bisect_left(sorted(names), "le")  # where ``le`` sorts among the labels
        labelled = []
        for key, s in series:
            parts = [f'{names[j]}="{_escape_label(key[j])}"' for j in order]
            before = "".join(p + "," for p in parts[:split])
            after = "".join("," + p for p in parts[split:])
            labelled.append((",".join(parts), before, after, s))
        excluded = self.excluded
        out = []
        if _REQUESTS not in excluded:
            out.append(_help_type(f"{ns}_requests", "The total number of client requests",
                                  "counter"))
            out.extend(f"{ns}_requests{{{full}}} {_go_float(s.requests)}\n"
                       for full, _, _, s in labelled)
        for i, (hname, doc, _) in enumerate(_HISTOGRAMS):
            if hname in excluded:
                continue
            name = f"{ns}_{hname}"
            out.append(_help_type(name, doc, "histogram"))
            bounds = self.which[i]
            les = [_go_le(_go_float(b)) for b in bounds] + ["+Inf"]
            # HistogramMetricFamily.add_metric: no _count/_sum when a bucket is negative.
            with_sum = not bounds or float(_go_float(bounds[0])) >= 0
            for full, before, after, s in labelled:
                hist = s.hists[i]
                acc = 0
                lines = []
                for le, n in zip(les, hist.counts):
                    acc += n
                    lines.append(f'{name}_bucket{{{before}le="{le}"{after}}} '
                                 f"{_go_float(float(acc))}\n")
                if not acc:
                    continue
                out.extend(lines)
                if with_sum:
                    out.append(f"{name}_count{{{full}}} {_go_float(float(acc))}\n")
                    out.append(f"{name}_sum{{{full}}} {_go_float(hist.total)}\n")
        if _LATENCY not in excluded:
            _write_family(self._latency_family(), frozenset(), out)
        return "".join(out)


class _RequestText(Metric):
    """What :meth:`_RequestCollector.collect` yields to :meth:`Metrics.render`: its families
    already written (``text``)."""

    def __init__(self, text: str) -> None:
        super().__init__("ingresslib_request_text", "", "unknown")
        self.text = text


class Metrics:
    """The metrics of one server, in a private registry.

    >>> m = Metrics()
    >>> m.reload_succeeded(1700000000.0, config_hash=42)
    >>> b"nginx_ingress_controller_config_last_reload_successful 1.0" in m.render()
    True

    ``prefix`` is the metric namespace (``nginx_ingress_controller`` like ingress-nginx, or e.g.
    ``ingresslib``); the watch-stream counters, which ingress-nginx does not have, always use
    ``watch_prefix``. ``per_host=False`` drops the ``host`` label (ingress-nginx
    ``--metrics-per-host=false``); ``report_status_classes=True`` reports ``2xx``/``4xx``/...
    instead of the exact status (``--report-status-classes``). Until :meth:`set_hosts` is
    called, at most ``max_hosts`` distinct Host values get a ``host`` label of their own (later
    ones are counted with ``host=""``), so clients cannot create series without end.
    ``per_undefined_host=True`` (``--metrics-per-undefined-host``) counts the requests for
    hosts :meth:`set_hosts` does not name too, each with its Host as the ``host`` label, the
    first ``max_hosts`` such names only (later ones ``host=""``: ingress-nginx has no bound,
    and a client sending random Host headers made series without end); it needs
    ``per_host`` (ValueError otherwise, as the controller's flag parser refuses it).
    ``exclude_socket_metrics`` names per-request metrics not to export (``("requests",
    "request_size")``, each with or without the ``nginx_ingress_controller_`` prefix, as
    ``--exclude-socket-metrics``; one str is a TypeError; a name that is none of them is
    ignored with a warning, as ingress-nginx ignores it).
    ``time_buckets``, ``length_buckets`` and ``size_buckets`` are histogram upper bounds, kept
    in increasing order, once each; ``+Inf`` is the bucket every histogram has anyway (as in
    client_golang) and NaN is refused (ValueError).
    """

    def __init__(
        self,
        prefix: str = "nginx_ingress_controller",
        *,
        per_host: bool = True,
        per_undefined_host: bool = False,
        report_status_classes: bool = False,
        exclude_socket_metrics: Iterable[str] = (),
        go_names: bool = True,
        watch_prefix: str = "ingresslib",
        max_hosts: int = 1000,
        time_buckets: Sequence[float] = TIME_BUCKETS,
        length_buckets: Sequence[float] = LENGTH_BUCKETS,
        size_buckets: Sequence[float] = SIZE_BUCKETS,
    ) -> None:
        if per_undefined_host and not per_host:
            # The controller's flag parser refuses the pair (pkg/flags/flags_test.go
            # TestMetricsPerUndefinedHostWithMetricsPerHostFalse: "Expected an error parsing
            # flags"): without the host label there is nothing per host to export.
            raise ValueError("per_undefined_host=True needs per_host=True")
        self.prefix = prefix
        self.per_host = per_host
        self.per_undefined_host = per_undefined_host
        self.report_status_classes = report_status_classes
        self.go_names = go_names
        #: The host names served (see :meth:`set_hosts`); None: not known.
        self._hosts: frozenset[str] | None = None
        #: Without :meth:`set_hosts`: the host label values given out so far, at most
        #: ``max_hosts`` (cardinality bound).
        self.max_hosts = max_hosts
        self._seen_hosts: set[str] = set()
        self._hosts_capped = False
        #: Held while a request is counted and while the series are pruned (set_hosts,
        #: set_ingresses): ``s.requests += 1`` and a new series' ``series[key] = ...`` are
        #: read-modify-writes that two threads counting at once would lose (measured: 1,682
        #: of 20,000 requests from four threads). Scrapes read without it.
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        labels = _REQUEST_LABELS if per_host else _REQUEST_LABELS[:-1]
        ns = prefix

        # -- per request (socket.go): plain-Python state, one object per label tuple --
        self._requests = _RequestCollector(
            ns, labels, _bounds(time_buckets), _bounds(length_buckets), _bounds(size_buckets),
            _excluded_metrics(exclude_socket_metrics, prefix))
        reg.register(self._requests)

        # -- controller (controller.go) --
        self._config_hash = Gauge(
            "config_hash", "Running configuration hash actually running", namespace=ns,
            registry=reg)
        self._config_ok = Gauge(
            "config_last_reload_successful",
            "Whether the last configuration reload attempt was successful", namespace=ns,
            registry=reg)
        self._config_ok_time = Gauge(
            "config_last_reload_successful_timestamp_seconds",
            "Timestamp of the last successful configuration reload.", namespace=ns, registry=reg)
        self._reload_success = Counter(
            "success", "Cumulative number of Ingress controller reload operations",
            namespace=ns, registry=reg)
        self._reload_errors = Counter(
            "errors", "Cumulative number of Ingress controller errors during reload operations",
            namespace=ns, registry=reg)
        self._ssl_expire = Gauge(
            "ssl_expire_time_seconds",
            "Number of seconds since 1970 to the SSL Certificate expire. An example to check if "
            "this certificate will expire in 10 days is: "
            f'"{ns}_ssl_expire_time_seconds < (time() + (10 * 24 * 3600))"',
            ("host", "namespace", "secret_name"), namespace=ns, registry=reg)
        #: The label sets of ``_ssl_expire`` (see :meth:`set_certificates`).
        self._ssl_series: set[tuple[str, str, str]] = set()
        # A fresh server has loaded its configuration (it would not be serving otherwise); the
        # reload hooks update these from then on.
        self._config_ok.set(1)

        # -- the cluster watch (ours; ingress-nginx has no equivalent) --
        wp = watch_prefix
        self._watch_events = Counter(
            "watch_events", "Kubernetes watch events applied, by resource kind and event type",
            ("kind", "type"), namespace=wp, registry=reg)
        self._watch_errors = Counter(
            "watch_errors", "Kubernetes list/watch errors (broken streams, garbage, invalid "
            "objects), by resource kind", ("kind",), namespace=wp, registry=reg)
        self._watch_reconnects = Counter(
            "watch_reconnects", "Kubernetes watch reconnections, by resource kind", ("kind",),
            namespace=wp, registry=reg)
        self._watch_relists = Counter(
            "watch_relists", "Kubernetes full re-lists (after 410 Gone or a resourceVersion "
            "the server has not reached), by resource kind", ("kind",), namespace=wp,
            registry=reg)

        # Counters written without ``_total`` in go_names mode: the ingress-nginx ones only.
        self._go_counters = frozenset(f"{ns}_{n}" for n in ("requests", "success", "errors"))

    # -- per request ----------------------------------------------------------------------------

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (runs per request: one dict lookup and a bisect per
        histogram, see :class:`_RequestCollector`). As ingress-nginx, whose ``monitor.call()``
        runs in a location's log phase only, a request answered before a location (refused
        while its head was read, app-root's 302, the from-to-www twin's redirect) is not
        counted, and the 413 of a Content-Length has empty location labels
        (:func:`_monitor_sees`).

        Safe from several threads at once (drivers on loops of their own sharing one
        :class:`Metrics`): one lock around the update, as prometheus-client's own metrics
        take; a scrape never waits for it."""
        # acquire/release rather than ``with``: about 1,000 fewer instructions per request
        # (callgrind, benchmarks/hotpath_ab.py observe: 44,606 -> 43,585; 42,242 unlocked).
        lock = self._lock
        lock.acquire()
        try:
            self._observe(record)
        finally:
            lock.release()

    __call__ = observe

    def _observe(self, record: RequestRecord) -> None:
        # nginx's $status is printed "%03ui" (ngx_http_variable_status): 0, a request that
        # got no response, is "000"; socket.go's class is "%cxx" of its first character.
        status = f"{record.status:03d}"
        if self.report_status_classes:
            status = status[0] + "xx"
        method = record.method if record.method in _METHODS else "OTHER"
        seen = _monitor_sees(record)
        if seen is None:
            return
        if seen:
            namespace, ingress, service = _location_labels(record)
            canary = _canary_label(record)
            # monitor.lua: "path = ngx.var.location_path", which nginx.tmpl sets from
            # getIngressInformation (template.go): "if ingressPath == \"\" { ingressPath =
            # \"/\"; info.Path = \"/\" }" -- a rule without a path (ImplementationSpecific) or
            # an Ingress's defaultBackend is "/"; a location without an Ingress (no rule
            # matched) "".
            path = record.rule_path or ("/" if record.ingress else "")
        else:
            # The location's log phase ran, its rewrite phase (every ``set`` of those
            # variables, ``$proxy_alternative_upstream_name`` too) did not: all read "".
            namespace = ingress = service = canary = path = ""
        if self.per_host:
            hosts = self._hosts
            if hosts is None:
                # Served hosts unknown (set_hosts never called): the Host header is client
                # input, label it only when a rule matched (any request with
                # per_undefined_host, which asks for every Host), and only for the first
                # ``max_hosts`` names seen: a catch-all or wildcard rule matches whatever Host
                # a client sends, and each new name would be eight new series kept forever.
                host = (record.host if record.ingress is not None or self.per_undefined_host
                        else "")
                # A name seen already costs no call: the default path (no set_hosts) stays
                # as fast as before the bound moved into _bounded_host (about 80 ns, 2%).
                if host and host not in self._seen_hosts:
                    host = self._bounded_host(host)
            elif record.host in hosts:  # the catch-all's "_" among them (set_hosts)
                host = record.host
            elif not record.host:
                # A request that named no host (HTTP/1.0 without Host) reaches the catch-all
                # server, and nginx's $host is then that server's name (ngx_http_variable_host:
                # "cscf->server_name", ``server_name _`` in nginx.tmpl): host="_".
                host = _DEFAULT_SERVER
            else:
                # socket.go: "if sc.metricsPerHost && !sc.hosts.Has(stats.Host) { continue }"
                # ("Skipping metric for host not being served"; ingress-nginx#3713, #3844):
                # unknown Host headers, and names only a wildcard or catch-all rule matched,
                # are not counted, so clients cannot create series without end.
                if not self.per_undefined_host:
                    return
                # --metrics-per-undefined-host (ingress-nginx#11818): "Export metrics per-host
                # even if the host is not defined in an ingress": the request is counted whole,
                # its host label the Host (e2e test/e2e/metrics/metrics.go: a 404 for
                # wildcard.foo.com gives a requests series with host="wildcard.foo.com").
                # Unlike there, only the first ``max_hosts`` such names get a label of their
                # own: each is a client's Host header, and its series are kept for ever.
                host = self._bounded_host(record.host)
            key: tuple[str, ...] = (status, method, path, namespace, ingress, service, canary,
                                    host)
        else:
            key = (status, method, path, namespace, ingress, service, canary)
        self._requests.observe(key, (ingress, namespace, service, canary), record)

    def _bounded_host(self, host: str) -> str:
        """``host`` as a label while fewer than ``max_hosts`` client-given names (any Host
        while the served hosts are unknown, an undefined one with ``per_undefined_host``) have
        one; "" past that, with one warning."""
        if host and host not in self._seen_hosts:
            if len(self._seen_hosts) >= self.max_hosts:
                if not self._hosts_capped:
                    self._hosts_capped = True
                    _log.warning(
                        "metrics: more than %d distinct Host values and %s; further ones are "
                        "counted with host=\"\"", self.max_hosts,
                        "no set_hosts()" if self._hosts is None else "not among set_hosts()'s")
                return ""
            self._seen_hosts.add(host)
        return host

    def set_hosts(self, hosts: Iterable[str] | None) -> None:
        """The host names the configuration serves (:func:`hosts_of`), like ingress-nginx's
        ``SetHosts`` after each reload. With ``per_host`` (the default), requests whose Host is
        not one of them exactly are not counted, as ingress-nginx does (a wildcard such as
        ``*.foo.test`` is a name of its own, not a pattern), and the series no Ingress took
        (``ingress=""``: a path no rule covers) of hosts no longer among them are dropped
        (ingress-nginx counts those under the host's first Ingress, and drops them with it).
        With ``per_undefined_host`` those requests are counted under their Host, and no
        series is dropped here.
        A request that names no host (HTTP/1.0 without Host) is counted with ``host="_"``,
        the catch-all server's name, which ingress-nginx's hosts always include.
        None: not known (the default; requests a rule matched are labelled with their Host)."""
        # ingress-nginx's getConfiguration puts every server's Hostname in SetHosts, the
        # catch-all's "_" too: its requests are counted, and its series are never dropped.
        new = None if hosts is None else frozenset(hosts) | {_DEFAULT_SERVER}
        with self._lock:  # (a thread counting meanwhile: see ``_lock``)
            if new is None and self._hosts is not None:
                # Unknown again: the ``max_hosts`` bound restarts from the names that have
                # series now (set_ingresses does not recount while the hosts are known).
                self._hosts = None
                self._recount_hosts()
                return
            self._hosts = new
            # With per_undefined_host a host no longer served is an undefined host: its series
            # go on (ingress-nginx's RemoveMetrics drops the removed Ingresses' series only),
            # or every reload would restart their counters; the bound counts it from now on,
            # and no longer a host now served.
            if self.per_undefined_host:
                self._recount_hosts()
            elif new is not None and self.per_host:
                # The series of a host no longer served that no Ingress took (a 404 for a
                # path no rule covers, the 413 of a Content-Length) would stay for ever:
                # set_ingresses keeps ``ingress=""`` series, and one preview host after
                # another would pile up.
                self._requests.retain_hosts(new)

    def set_ingresses(self, ingresses: Iterable[Ingress | str] | None) -> None:
        """The Ingresses the configuration serves (:class:`~ingresslib.Ingress` objects or
        ``"namespace/name"``), after each reload: the per-request series labelled with an
        Ingress no longer among them are dropped, as ingress-nginx's ``RemoveMetrics`` drops
        those of the Ingresses a reload removed (``GetRemovedIngresses``), so Ingresses that
        come and go (preview environments) do not leave series behind for ever. Requests no
        Ingress took (``ingress=""``) keep theirs. A request still in flight when its Ingress
        went is counted under it when it ends (ingress-nginx likewise). None: keep everything
        (the default, and what happens while this is never called)."""
        if ingresses is None:
            return
        served: set[tuple[str, str]] = set()
        for i in ingresses:
            if isinstance(i, str):
                namespace, _, name = i.rpartition("/")
            else:
                namespace, name = i.metadata.namespace, i.metadata.name
            served.add((namespace, name))
        with self._lock:  # a series a thread adds meanwhile is not lost in the swap
            self._requests.retain(frozenset(served))
            if self._hosts is None or self.per_undefined_host:
                self._recount_hosts()

    def _recount_hosts(self) -> None:
        # The ``max_hosts`` bound counts names that still have series: the hosts of the
        # Ingresses dropped are free again, or preview environments coming and going would
        # use the bound up and label every later host "". The served hosts, when known, are
        # not client-given names: not counted.
        if self.per_host:
            served = self._hosts or frozenset()
            self._seen_hosts = {k[7] for k in self._requests.series
                                if k[7] and k[7] not in served}
            # Warned again only once the bound had room: with per_undefined_host each reload
            # recounts, and nothing freed would repeat the warning after every reload.
            self._hosts_capped &= len(self._seen_hosts) >= self.max_hosts

    # -- reloads --------------------------------------------------------------------------------

    def reload_succeeded(self, now: float, config_hash: int | str | bytes | None = None) -> None:
        """A new configuration is serving. ``now`` is wall-clock seconds since the epoch;
        ``config_hash`` an int, or a str/bytes digest (folded into 52 bits so a float gauge holds
        it exactly); None leaves the hash gauge as it was."""
        self._reload_success.inc()
        self._config_ok.set(1)
        # controller.go ConfigSuccess: "cm.configSuccessTime.Set(float64(time.Now().Unix()))",
        # whole seconds.
        self._config_ok_time.set(math.floor(now))
        if config_hash is not None:
            self._config_hash.set(_hash_value(config_hash))

    def reload_failed(self, now: float) -> None:
        """An update was rejected; the last good configuration keeps serving (SEMANTICS §11),
        so unlike ingress-nginx the hash gauge keeps the running configuration's hash."""
        del now  # the gauge records successes only (ingress-nginx does the same)
        self._reload_errors.inc()
        self._config_ok.set(0)

    def on_reload(self, ok: bool, message: str = "") -> None:
        """Shaped like ``Reloader(on_reload=...)``: ``(ok, message)``, wall clock now."""
        import time

        if ok:
            self.reload_succeeded(time.time())
        else:
            self.reload_failed(time.time())

    # -- certificates ---------------------------------------------------------------------------

    def set_certificates(self, certs: Iterable[tuple[str, str, datetime.datetime]]) -> None:
        """Replace the certificate expiry gauge: ``(host, "namespace/secret", not_after)`` each.

        Hosts no longer listed disappear from the exposition. A naive ``not_after`` is UTC.
        The new list is read whole before the gauge changes, and only the series that go are
        removed: a scrape meanwhile (``MetricsServer`` renders in a worker thread) never finds
        the gauge emptied, so an alert on a host's series does not see it vanish for a moment.
        """
        new: dict[tuple[str, str, str], float] = {}
        for host, secret, not_after in certs:
            namespace, _, name = secret.rpartition("/")
            if not_after.tzinfo is None:
                not_after = not_after.replace(tzinfo=datetime.timezone.utc)
            new[(host, namespace, name)] = not_after.timestamp()
        # The new series first, then the ones that go: a host whose labels change (its Secret
        # renamed, the default certificate's Secret deleted) always has a series.
        for labels, value in new.items():
            self._ssl_expire.labels(*labels).set(value)
        for gone in self._ssl_series - new.keys():
            self._ssl_expire.remove(*gone)
        self._ssl_series = set(new)

    # -- the cluster watch ----------------------------------------------------------------------

    def watch_event(self, kind: str, event_type: str) -> None:
        """One ADDED/MODIFIED/DELETED/BOOKMARK event of ``kind`` (``"Ingress"``, ...)."""
        self._watch_events.labels(kind, event_type).inc()

    def watch_error(self, kind: str) -> None:
        """Count one list/watch error of ``kind`` (a broken stream, garbage, an invalid object)."""
        self._watch_errors.labels(kind).inc()

    def watch_reconnect(self, kind: str) -> None:
        """Count one reconnection of the watch of ``kind``."""
        self._watch_reconnects.labels(kind).inc()

    def watch_relist(self, kind: str) -> None:
        """Count one full re-list of ``kind`` (after 410 Gone or a resourceVersion the API
        server has not reached)."""
        self._watch_relists.labels(kind).inc()

    # -- exposition -----------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        if not self.go_names:
            try:
                return generate_latest(self.registry)
            except UnicodeEncodeError:
                # A lone surrogate in a label value or help text of a collector of the
                # application's (``registry``): written as U+FFFD (_SURROGATE), not a failed
                # scrape, nor every later one.
                return generate_latest(_Utf8Registry(self.registry))
        out: list[str] = []
        direct = self._requests.direct
        direct.on = True  # this thread only: a generate_latest elsewhere gets the samples
        try:
            for fam in self.registry.collect():
                if isinstance(fam, _RequestText):
                    out.append(fam.text)
                else:
                    _write_family(fam, self._go_counters, out)
        finally:
            direct.on = False
        text = "".join(out)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate in a collector's label value or help text (_SURROGATE).
            return _utf8(text).encode("utf-8")


class _Utf8Registry(CollectorRegistry):
    """``registry``'s families, each lone surrogate of a label value or help text written as
    U+FFFD (_SURROGATE): for :func:`generate_latest`, which encodes strictly."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(auto_describe=False)
        self._inner = registry

    def collect(self) -> Iterator[Metric]:
        for fam in self._inner.collect():
            fixed = copy.copy(fam)
            fixed.documentation = _utf8(fam.documentation)
            fixed.samples = [s._replace(labels={_utf8(k): _utf8(v) for k, v in s.labels.items()})
                             for s in fam.samples]
            yield fixed


def _help_type(name: str, doc: str, typ: str) -> str:
    doc = doc.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n"


def _write_family(fam: Metric, go_counters: frozenset[str], out: list[str]) -> None:
    """One family in :meth:`Metrics.render`'s exposition: the counters of ``go_counters``
    under their Go names, the others with ``_total``; no ``_created``; Go's bucket bounds."""
    name, typ = fam.name, fam.type
    rename: dict[str, str] = {}
    if typ == "counter":
        if name in go_counters:
            rename[name + "_total"] = name  # the Go client's spelling
        else:
            name += "_total"
    # The text format 0.0.4 has five types (Prometheus's promparse: any other is "invalid
    # metric type" and fails the whole scrape); the OpenMetrics ones an application's metrics
    # in ``registry`` may have are written as generate_latest writes them.
    elif typ == "info":
        name, typ = name + "_info", "gauge"
    elif typ == "stateset":
        typ = "gauge"
    elif typ == "gaugehistogram":
        typ = "histogram"
    elif typ == "unknown":
        typ = "untyped"
    out.append(_help_type(name, fam.documentation, typ))
    created = fam.name + "_created"
    # generate_latest: a gauge histogram's _gsum and _gcount are not histogram samples (no
    # such suffix in the text format): gauges of their own, after the family.
    apart = (fam.name + "_gcount", fam.name + "_gsum")
    moved: dict[str, list[str]] = {}
    for s in fam.samples:
        if s.name == created:
            continue
        sname = rename.get(s.name, s.name)
        # A collector's own timestamp (seconds) is written in milliseconds, as generate_latest.
        at = "" if s.timestamp is None else f" {int(float(s.timestamp) * 1000):d}"
        if s.labels:
            labels = s.labels
            le = labels.get("le")
            if le is not None:
                labels = dict(labels, le=_go_le(le))
            lab = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            line = f"{sname}{{{lab}}} {_go_float(s.value)}{at}\n"
        else:
            line = f"{sname} {_go_float(s.value)}{at}\n"
        if s.name in apart:
            moved.setdefault(s.name, []).append(line)
        else:
            out.append(line)
    for gname, lines in sorted(moved.items()):
        out.append(_help_type(gname, fam.documentation, "gauge"))
        out.extend(lines)


def _location_labels(record: RequestRecord) -> tuple[str, str, str]:
    """``(namespace, ingress, service)`` as ingress-nginx labels a request: the variables its
    template sets in the location, from the rule's (main) Ingress, also when the canary served
    (nginx.tmpl: "set $namespace {{ $ing.Namespace | quote}}; set $ingress_name {{ $ing.Rule |
    quote }}; set $service_name {{ $ing.Service | quote }};", ``$ing`` being
    ``getIngressInformation $location.Ingress``; a canary Ingress has no location of its own,
    controller.go createServers: "Ingress %v is marked as Canary, ignoring", its backend is the
    main upstream's alternative). The canary shows in the ``canary`` label only."""
    ns, sep, ingress = (record.ingress or "").rpartition("/")  # Match.ingress: "namespace/name"
    namespace = ns if sep else record.namespace or ""
    service = record.service or ""
    if record.canary:
        primary = getattr(record, "primary_service", None)
        if primary is not None:
            service = primary
    return namespace, ingress, service


def _monitor_sees(record: RequestRecord) -> bool | None:
    """Whether ingress-nginx's ``monitor.call()`` runs for ``record``, from its ``phase``:
    True, with the location's variables set (the location's rewrite phase ran; a record
    without ``phase``, built elsewhere, is taken as one); False, with them unset; None, not at
    all (the request is not counted).

    nginx.tmpl calls ``monitor.call()`` in a ``log_by_lua_block`` of each ``location`` (and of
    the custom-error locations) only, never at the ``http`` or ``server`` level, and the
    from-to-www twin's server has no location. lua-nginx-module's log handler runs the block
    of the request's current location configuration ("llcf = ngx_http_get_module_loc_conf(r,
    ngx_http_lua_module); if (llcf->log_handler == NULL) { ... return NGX_DECLINED; }"). So:

    - ``"head"`` (refused while the head was read: 400/405/408/414/431, plain HTTP on the TLS
      port; the www twin's redirect): the configuration is the server's, no log handler: not
      counted.
    - ``"server"``, app-root's 302: the server block's ``if ($uri = /) { return 302 ...}``,
      in the server rewrite phase, before any location is chosen (a server-level ``if`` keeps
      the server's configuration, ngx_http_rewrite_module.c: "if_code->loc_conf = NULL"):
      not counted.
    - ``"server"``, the 413 of a Content-Length over the body size: the find_config phase
      (``ngx_http_core_find_config_phase``) finalizes the request once the location is
      chosen, so that location's log phase runs, but its rewrite phase, where nginx.tmpl sets ``$namespace``, ``$ingress_name``,
      ``$service_name``, ``$location_path`` and ``$proxy_alternative_upstream_name``, never
      did: unset ``set`` variables read as "" (ngx_http_rewrite_var's
      ``ngx_http_variable_null_value``), and socket.go takes the labels as sent. Counted,
      with those labels empty (``host`` and ``status`` as usual).
    """
    phase = getattr(record, "phase", None)
    if phase is None or phase == "location":
        return True
    if phase == "server" and record.status == 413:
        return False
    return None


def _canary_label(record: RequestRecord) -> str:
    # ingress-nginx: canary = $proxy_alternative_upstream_name, the canary upstream's name when
    # the canary served, else empty.
    if not record.canary:
        return ""
    return upstream_names(record)[1]


def _go_le(le: str) -> str:
    """A bucket bound as client_golang writes it: ``strconv.FormatFloat(f, 'g', -1, 64)``
    (expfmt's writeFloat), so ``1.0`` is ``1`` and ``1000000.0`` is ``1e+06``. Dashboards and
    alerts written against ingress-nginx select e.g. ``le="1"``."""
    try:
        d = Decimal(le)
    except ArithmeticError:
        return le
    if not d.is_finite():
        return le  # "+Inf"
    if d.is_zero():
        return "0"
    sign, digits, exp = d.normalize().as_tuple()
    assert isinstance(exp, int)
    x = len(digits) - 1 + exp  # decimal exponent of the first digit
    text = "".join(map(str, digits))
    neg = "-" if sign else ""
    # Go: %e "if the exponent is less than -4 or greater than or equal to the precision",
    # the precision being 6 for the shortest representation.
    if x < -4 or x >= 6:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if x < 0:
        return f"{neg}0.{'0' * (-x - 1)}{text}"
    if len(text) <= x + 1:
        return f"{neg}{text}{'0' * (x + 1 - len(text))}"
    return f"{neg}{text[:x + 1]}.{text[x + 1:]}"


def _bounds(buckets: Iterable[float]) -> tuple[float, ...]:
    """Histogram upper bounds as :class:`Metrics` keeps them: increasing, each once, without
    ``+Inf``.

    The ``+Inf`` bucket is always written; client_golang's ``newHistogram`` drops one given
    ("The +Inf bucket is implicit. Remove it here.") and prometheus-client's ``Histogram``
    takes a trailing ``inf`` as that bucket; kept, it would write a second ``le="+Inf"``
    sample for every series (the same series twice in one exposition). Both clients refuse
    bounds out of order (client_golang: "histogram buckets must be in increasing order",
    prometheus-client: "Buckets not in sorted order"); bisected as given they would count
    observations into the wrong buckets, so they are taken as the set of bounds they are.
    A NaN bound bounds nothing: ValueError."""
    out: set[float] = set()
    for b in buckets:
        f = float(b)
        if math.isnan(f):
            raise ValueError("a histogram bucket bound must be a number, not NaN")
        if f != math.inf:
            out.add(f)
    return tuple(sorted(out))


def _escape_label(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _hash_value(h: int | str | bytes) -> float:
    if isinstance(h, int):
        return float(h)
    data = h.encode() if isinstance(h, str) else h
    return float(int.from_bytes(hashlib.sha256(data).digest()[:8], "big") >> 12)


# --- certificate expiry ------------------------------------------------------------------------


def certificate_not_after(pem: bytes) -> datetime.datetime:
    """The ``notAfter`` of the first certificate in ``pem`` (aware, UTC), as the TLS store
    reads it (``_tls._validity``). Raises ValueError when ``pem`` holds no readable one."""
    from ._tls import _validity

    return _validity(pem)[1]


def certificates_of(
    res: Resources, ingresses: Iterable[Ingress] | None = None,
) -> list[tuple[str, str, datetime.datetime]]:
    """``(host, "namespace/secret", not_after)`` for every host the TLS store serves a Secret's
    certificate (``ingresses``: the served ones; default: all of ``res``), ready for
    :meth:`Metrics.set_certificates`, by host. The store's own decision
    (``_tls.served_certificates``), not a second reading of the manifests: a ``tls.hosts``
    listing the store refuses (another namespace routes the host), a certificate that does not
    cover the host, a Secret that is missing or does not load (the TLS store reports those)
    give no series. As in ingress-nginx, whose ``SetSSLExpireTime`` reads the certificate each
    server it configured got; a ``from-to-www-redirect`` twin served its host's certificate has
    a series here too (a redirect, not a server, there), the same Secret and date as its host."""
    from ._tls import served_certificates

    return served_certificates(res, ingresses)


def hosts_of(res: Resources, ingresses: Iterable[Ingress] | None = None) -> frozenset[str]:
    """The rule hosts of ``ingresses`` (default: all of ``res``), for :meth:`Metrics.set_hosts`:
    ingress-nginx's ``SetHosts`` gets its servers' names, one per rule host (a wildcard stays a
    name; rules without a host go to the catch-all server ``_``, which counts only the
    requests that name no host, see :meth:`Metrics.set_hosts`). A canary Ingress's hosts are
    not among them: createServers skips it ("Ingress %v is marked as Canary, ignoring"), so a
    host only a canary names has no server (the router routes none of its requests either: a
    canary joins a main rule or serves nothing); the main Ingress's rule brings a host both
    name. The ``server-alias`` names the route table keeps are among them too (controller.go
    ``getConfiguration``: "for _, alias := range server.Aliases { ... hosts.Insert(alias) }"):
    a request made by an alias is counted, its ``host`` label the alias (nginx's ``$host``)."""
    mains = sorted((ing for ing in (res.ingresses if ingresses is None else ingresses)
                    if not _is_canary(ing)), key=_age_key)
    hosts = {r.host for ing in mains for r in ing.spec.rules if r.host}
    # The first Ingress (oldest first) with aliases sets its server's (_table.server_aliases).
    hosts.update(alias for alias, _server in alias_servers(mains))
    return frozenset(hosts)


# --- the server ----------------------------------------------------------------------------------


def _reason(status: int) -> bytes:
    """The standard reason phrase (``OK``, ``Service Unavailable``): h11 sends none unless
    told, and ``HTTP/1.1 200 `` (a valid, empty reason-phrase: RFC 9112 §4) reads as a
    truncated line to a person with ``curl -i``."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _gzip_accepted(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the scraper takes a gzip body, as promhttp's ``HandlerFor`` (ingress-nginx's
    ``/metrics``, compression on) reads ``Accept-Encoding``: a ``gzip`` or ``gzip;...``
    element; here ``gzip;q=0`` ("not acceptable", RFC 9110 §12.5.3) is a refusal.
    Prometheus asks for gzip in every scrape; a large exposition is about 50 times smaller."""
    for name, value in headers:
        if name != b"accept-encoding":
            continue
        for part in value.split(b","):
            coding, _, params = part.strip().partition(b";")
            if coding.strip().lower() != b"gzip":
                continue
            q = 1.0
            for param in params.split(b";"):
                key, _, val = param.strip().partition(b"=")
                if key.strip().lower() == b"q":
                    try:
                        q = float(val.strip())
                    except ValueError:
                        q = 0.0
            if q > 0:
                return True
    return False


class MetricsServer:
    """``GET /metrics`` (the exposition) and ``GET /healthz`` (``ok`` while ``healthy()``, else
    503) on their own listener, like ingress-nginx's ``:10254``.

    Usage (inside a running loop)::

        server = MetricsServer(metrics, "127.0.0.1", 10254, healthy=lambda: True)
        port = await server.start()
        ...
        await server.close()
    """

    #: Idle or slow clients are dropped after this many seconds without a complete request
    #: (one deadline for the whole request, started anew after each answer: a client trickling
    #: a byte at a time is dropped too; ingress-nginx's ``ReadTimeout: 10 * time.Second``).
    timeout = 30.0
    #: A client that stops reading its answer is cut off after this many seconds
    #: (ingress-nginx's ``WriteTimeout: 300 * time.Second``): the exposition it holds is freed.
    write_timeout = 300.0

    def __init__(
        self, metrics: Metrics, host: str = "127.0.0.1", port: int = 10254,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.healthy = healthy
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Bind and listen; returns the bound port (useful with ``port=0``)."""
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening and close every client connection at once (an answer still being
        written is dropped); returns once the listener is closed."""
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            # An answer still queued would keep the socket (and its task) until the client
            # reads it: drop it, as Go's Server.Close() closes active connections at once.
            if w.transport.get_write_buffer_size():
                w.transport.abort()
            else:
                w.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        loop = asyncio.get_running_loop()
        # One deadline per request, not per read: bytes trickled one at a time must not keep
        # a connection open for ever.
        deadline = loop.time() + self.timeout
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(65536)
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    status, ctype, body, extra = await self._answer(event)
                    head = event.method == b"HEAD"
                    headers = [("content-type", ctype), ("content-length", str(len(body))),
                               *extra]
                    writer.write(conn.send(h11.Response(status_code=status, headers=headers,
                                                        reason=_reason(status))) or b"")
                    if not head:
                        writer.write(conn.send(h11.Data(data=body)) or b"")
                    writer.write(conn.send(h11.EndOfMessage()) or b"")
                    try:
                        async with asyncio.timeout(self.write_timeout):
                            await writer.drain()
                    except TimeoutError:
                        # The client stopped reading: close() would wait for the buffer to
                        # be read, which it never will be.
                        writer.transport.abort()
                        return
                elif isinstance(event, h11.EndOfMessage):
                    if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                        break
                    conn.start_next_cycle()
                    deadline = loop.time() + self.timeout
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    break
                # h11.Data: request bodies are ignored
        except h11.RemoteProtocolError as e:
            try:
                writer.write(conn.send(h11.Response(
                    status_code=e.error_status_hint, reason=_reason(e.error_status_hint),
                    headers=[("content-length", "0"), ("connection", "close")])) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
            except h11.LocalProtocolError:
                pass
        except (TimeoutError, ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, req: h11.Request) -> tuple[int, str, bytes, list[tuple[str, str]]]:
        """Status, content type, body and any further response headers."""
        path = req.target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/healthz"):
            return 404, "text/plain; charset=utf-8", b"404 Not Found\n", []
        if req.method not in (b"GET", b"HEAD"):
            # RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a
            # 405 response containing a list of the target resource's currently supported
            # methods."
            return (405, "text/plain; charset=utf-8", b"405 Method Not Allowed\n",
                    [("allow", "GET, HEAD")])
        if path == b"/healthz":
            try:
                ok = self.healthy()
            except Exception:  # a failing check is an unhealthy server, not a crash
                _log.exception("healthz check failed")
                ok = False
            if ok:
                return 200, "text/plain; charset=utf-8", b"ok", []
            return 503, "text/plain; charset=utf-8", b"unhealthy", []
        # Rendering many series takes a while: off the loop that is proxying
        # (prometheus-client values are thread-safe).
        loop = asyncio.get_running_loop()
        gz = _gzip_accepted(req.headers)
        try:
            body = await loop.run_in_executor(None, self._exposition, gz)
        except Exception as e:  # a collector of the application's (``metrics.registry``) broke
            # promhttp's default (HTTPErrorOnError): a 500 saying why, not a connection closed
            # without an answer and an unhandled-exception traceback from asyncio.
            _log.exception("metrics: rendering the exposition failed")
            return (500, "text/plain; charset=utf-8",
                    f"An error has occurred while serving metrics:\n\n{e}\n".encode(
                        "utf-8", "replace"), [])
        if gz:
            return 200, CONTENT_TYPE, body, [("content-encoding", "gzip"),
                                             ("vary", "accept-encoding")]
        return 200, CONTENT_TYPE, body, []

    def _exposition(self, gz: bool) -> bytes:
        body = self.metrics.render()
        # zlib lets go of the GIL while it compresses: the proxy's loop keeps running.
        return gzip.compress(body, compresslevel=6, mtime=0) if gz else body
