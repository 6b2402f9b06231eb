"""Session 34, h1: the controller's metrics flags, for ``Metrics`` and ``serve``.

ingress-nginx's controller takes ``--metrics-per-host`` (true), ``--metrics-per-undefined-host``
(false), ``--report-status-classes`` (false), ``--exclude-socket-metrics`` (none) and
``--time-buckets`` / ``--length-buckets`` / ``--size-buckets`` (pkg/flags/flags.go). Before,
``serve`` had none of them (always ingress-nginx's defaults) and ``Metrics`` had no
per-undefined-host nor exclusion option.

What the controller does with them, and what these tests hold us to:
- ``--metrics-per-undefined-host=true``: a request whose Host no Ingress defines is counted,
  labelled with that host (test/e2e/metrics/metrics.go "request metrics per undefined host are
  present when flag is set": a GET for ``wildcard.foo.com`` answered 404 gives one
  ``nginx_ingress_controller_requests`` series with ``host="wildcard.foo.com"``); with
  ``--metrics-per-host=false`` the flag parser refuses it (flags_test.go
  TestMetricsPerUndefinedHostWithMetricsPerHostFalse).
- ``--exclude-socket-metrics``: the named socket metrics are not exported, with or without the
  ``nginx_ingress_controller_`` prefix (socket.go NewSocketCollector: ``strings.TrimPrefix``);
  an unknown name changes nothing and is not an error (metrics.go "exclude socket request
  metrics are present": ``--exclude-socket-metrics=non_existing_metric_does_not_affect_...``).
- the bucket flags are pflag ``Float64Slice``s: comma-separated, a value that is no number is
  refused by the parser (naming the flag), a repeated flag appends.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingresslib._cli import build_parser, main
from ingresslib._metrics import Metrics

from _records import rec

P = "nginx_ingress_controller"


def _text(m: Metrics) -> str:
    return m.render().decode()


def _request_hosts(text: str) -> list[str]:
    return [ln.split('host="', 1)[1].split('"', 1)[0]
            for ln in text.splitlines() if ln.startswith(f"{P}_requests{{")]


def _families(text: str) -> set[str]:
    return {ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")}


def _unrouted(host: str) -> object:
    # The 404 of a host no Ingress defines (no rule matched, no upstream).
    return rec(host=host, ingress=None, rule_path=None, service=None, namespace=None,
               status=404, upstreams=(), upstream_status=None, upstream_statuses=(),
               upstream_connect=None, upstream_first_byte=None)


# --- per-undefined-host --------------------------------------------------------------------------


def test_undefined_host_is_skipped_by_default_and_counted_with_its_host_when_on() -> None:
    off, on = Metrics(), Metrics(per_undefined_host=True)
    for m in (off, on):
        m.set_hosts({"foo.com"})
        m.observe(_unrouted("wildcard.foo.com"))  # type: ignore[arg-type]
        m.observe(rec(host="foo.com", ingress="shop/web", rule_path="/"))
    assert _request_hosts(_text(off)) == ["foo.com"]
    assert sorted(_request_hosts(_text(on))) == ["foo.com", "wildcard.foo.com"]
    # The whole request is counted (ingress-nginx skips or keeps it whole): its histograms too.
    assert 'host="wildcard.foo.com"' in "".join(
        ln for ln in _text(on).splitlines() if ln.startswith(f"{P}_request_duration_seconds_count"))


def test_undefined_host_through_a_wildcard_rule_keeps_its_ingress_labels() -> None:
    m = Metrics(per_undefined_host=True)
    m.set_hosts({"*.foo.com"})  # the rule's host is a name of its own, not a pattern
    m.observe(rec(host="a.foo.com", ingress="shop/wild", rule_path="/"))
    (line,) = [ln for ln in _text(m).splitlines() if ln.startswith(f"{P}_requests{{")]
    assert 'host="a.foo.com"' in line and 'ingress="wild"' in line
    assert float(line.rsplit(" ", 1)[1]) == 1


def test_undefined_host_series_survive_a_reload() -> None:
    # ingress-nginx's RemoveMetrics drops the series of removed Ingresses only: with the flag
    # on, an undefined host's counter must not restart at every set_hosts (rate() would break).
    m = Metrics(per_undefined_host=True)
    m.set_hosts({"foo.com"})
    m.observe(_unrouted("other.test"))  # type: ignore[arg-type]
    m.set_hosts({"foo.com", "bar.com"})
    m.observe(_unrouted("other.test"))  # type: ignore[arg-type]
    (line,) = [ln for ln in _text(m).splitlines()
               if ln.startswith(f"{P}_requests{{") and 'host="other.test"' in ln]
    assert float(line.rsplit(" ", 1)[1]) == 2


def test_without_set_hosts_unrouted_requests_get_their_host_when_on() -> None:
    off, on = Metrics(), Metrics(per_undefined_host=True, max_hosts=1)
    for m in (off, on):
        m.observe(_unrouted("x.test"))  # type: ignore[arg-type]
        m.observe(_unrouted("y.test"))  # type: ignore[arg-type]
    assert _request_hosts(_text(off)) == [""]
    # Still bounded by max_hosts while the served hosts are unknown.
    assert sorted(_request_hosts(_text(on))) == ["", "x.test"]


def test_per_undefined_host_without_per_host_is_refused() -> None:
    with pytest.raises(ValueError, match="per_undefined_host.*per_host"):
        Metrics(per_host=False, per_undefined_host=True)


# --- exclude-socket-metrics ----------------------------------------------------------------------


@pytest.mark.parametrize("go_names", [True, False])
def test_excluded_socket_metrics_are_not_exported(go_names: bool) -> None:
    m = Metrics(go_names=go_names, exclude_socket_metrics=(
        f"{P}_request_size", "header_duration_seconds", "ingress_upstream_latency_seconds"))
    m.observe(rec())
    fams = _families(_text(m))
    for gone in ("request_size", "header_duration_seconds", "ingress_upstream_latency_seconds"):
        assert f"{P}_{gone}" not in fams
    requests = f"{P}_requests" if go_names else f"{P}_requests_total"
    kept = ("request_duration_seconds", "connect_duration_seconds", "response_size",
            "bytes_sent", "response_duration_seconds")
    assert {requests, *(f"{P}_{k}" for k in kept)} <= fams
    assert f"{P}_config_hash" in fams  # not a socket metric: never excluded


def test_excluding_requests_and_our_own_prefix() -> None:
    m = Metrics(prefix="ingresslib", exclude_socket_metrics=("ingresslib_requests",))
    m.observe(rec())
    text = _text(m)
    assert "ingresslib_requests{" not in text
    assert "ingresslib_request_size_bucket{" in text


def test_unknown_excluded_name_changes_nothing_and_is_warned(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingresslib.metrics"):
        m = Metrics(exclude_socket_metrics=("non_existing_metric_does_not_affect_existing",))
    assert "non_existing_metric_does_not_affect_existing" in caplog.text
    m.observe(rec())
    ref = Metrics()
    ref.observe(rec())
    assert _families(_text(m)) == _families(_text(ref))


# --- serve's options -----------------------------------------------------------------------------


def _serve_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", "-f", "m.yaml", *extra])


def test_serve_options_default_to_the_controllers() -> None:
    a = _serve_args()
    assert (a.metrics_per_host, a.metrics_per_undefined_host, a.report_status_classes) == (
        True, False, False)
    assert a.exclude_socket_metrics is None and a.time_buckets is None


@pytest.mark.parametrize("value,expected", [
    ("--metrics-per-host=false", False), ("--metrics-per-host=0", False),
    ("--metrics-per-host=F", False), ("--metrics-per-host", True),
    ("--metrics-per-host=True", True)])
def test_serve_bool_options_as_go_reads_them(value: str, expected: bool) -> None:
    assert _serve_args(value).metrics_per_host is expected


def test_serve_lists_split_on_commas_and_a_repeated_flag_appends() -> None:
    a = _serve_args("--time-buckets", "0.1,1", "--time-buckets=5",
                    "--exclude-socket-metrics", "requests,bytes_sent")
    assert a.time_buckets == [0.1, 1.0, 5.0]
    assert a.exclude_socket_metrics == ["requests", "bytes_sent"]


@pytest.mark.parametrize("flag,value,named", [
    ("--time-buckets", "1,x", "'x'"), ("--length-buckets", "", "''"),
    ("--size-buckets", "10,nan", "nan"), ("--report-status-classes", "maybe", "'maybe'")])
def test_serve_bad_values_are_usage_errors_naming_the_flag(
        flag: str, value: str, named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        _serve_args(f"{flag}={value}")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and named in err, err


def test_serve_refuses_per_undefined_host_without_per_host(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("")
    assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0", "--metrics-listen",
                 "127.0.0.1:0", "--metrics-per-host=false",
                 "--metrics-per-undefined-host"]) == 2
    err = capsys.readouterr().err
    assert "--metrics-per-undefined-host" in err and "--metrics-per-host" in err
    assert "listening on" not in err


def test_serve_builds_its_metrics_from_the_options() -> None:
    from ingresslib._serve import _metrics_from

    m = _metrics_from(_serve_args(
        "--metrics-per-host=false", "--report-status-classes", "--time-buckets", "0.3,3",
        "--length-buckets", "1000", "--size-buckets", "7", "--exclude-socket-metrics",
        "nginx_ingress_controller_bytes_sent"))
    m.observe(rec())
    text = _text(m)
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{P}_requests{{")]
    assert 'status="2xx"' in line and "host=" not in line
    les = set(re.findall(r'request_duration_seconds_bucket\{.*le="([^"]+)"', text))
    assert les == {"0.3", "3", "+Inf"}
    assert set(re.findall(r'request_size_bucket\{.*le="([^"]+)"', text)) == {"1000", "+Inf"}
    assert f"{P}_bytes_sent" not in _families(text)


def test_serve_defaults_build_the_default_metrics() -> None:
    from ingresslib._serve import _metrics_from

    m, ref = _metrics_from(_serve_args()), Metrics()
    for x in (m, ref):
        x.set_hosts({"foo.test"})
        x.observe(rec())
        x.observe(_unrouted("other.test"))  # type: ignore[arg-type]
    assert _text(m) == _text(ref)


# --- one real serve ------------------------------------------------------------------------------


def _get(port: int, host: str, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_serve_metrics_per_undefined_host_counts_an_undefined_hosts_404(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: prod}
spec:
  rules:
  - host: foo.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
""")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(
            [sys.executable, "-m", "ingresslib", "serve", "-f", str(m), "--listen",
             "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--access-log", "off",
             "--reload-interval", "0", "--metrics-per-undefined-host"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env) as proc:
        _scrape_after_an_undefined_host(proc)


def _scrape_after_an_undefined_host(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stderr is not None
        ports: dict[str, int] = {}
        deadline = time.monotonic() + 20
        while len(ports) < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            found = re.search(r"^(listening|metrics) on http://127\.0\.0\.1:(\d+)", line)
            if found:
                ports[found.group(1)] = int(found.group(2))
        assert len(ports) == 2, ports
        assert _get(ports["listening"], "wildcard.foo.com", "/").startswith(b"HTTP/1.1 404 ")
        scrape = b""
        for _ in range(50):  # the record is written once the answer is sent: poll briefly
            scrape = _get(ports["metrics"], "localhost", "/metrics")
            if b'host="wildcard.foo.com"' in scrape:
                break
            time.sleep(0.1)
        lines = [ln for ln in scrape.decode().splitlines() if ln.startswith(f"{P}_requests{{")]
        assert any('host="wildcard.foo.com"' in ln and 'status="404"' in ln for ln in lines), lines
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
