"""Session 19, second review (helper R19b) of what landed just before: the metrics exposition
(38c08dd), the TLS messages for a cut PEM (cc535ac) and the embedded-proxy example (e7fed3d).

The tests marked "fails before" failed on the code before this review (checked against copies
of the old ``_metrics.py`` and ``_tls.py``); the others guard what the review found right."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import Info
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from ingresslib import Metrics
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore, certificate_problems
from tests._process_helpers import kill_after, stderr_until_exit
from tests.test_tls import _ingress, _pems, _secret
from tests.test_user_walk_s19 import EXAMPLE, MANIFESTS


# --- TLS: naming the half of a Secret that cannot be read -----------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _cut(pem: bytes) -> bytes:
    """The PEM without its last line (the END line lost)."""
    return b"".join(pem.splitlines(True)[:-1])


def _problems(crt: bytes, key: bytes) -> list[str]:
    res = Resources(ingresses=(_ingress("w", [(("cut.test",), "s")], rule_hosts=("cut.test",)),),
                    secrets=(_secret("s", crt, key),))
    store = CertificateStore()
    messages = [p.message for p in store.update(res)]
    assert store.context_for("cut.test") is store.default_context
    # ``ingresslib check`` reads the same problems.
    assert [q.message for q in certificate_problems(res)] == messages
    return messages


def _body_lines(*pems: bytes) -> list[str]:
    return [ln for pem in pems for ln in pem.decode("utf-8", "replace").splitlines()
            if ln and not ln.startswith("-----")]


def test_non_ascii_text_in_tls_crt_with_a_cut_key_is_a_problem_not_a_traceback(
        ca: trustme.CA) -> None:
    # Fails before: ``TypeError: cadata should be an ASCII string or a bytes-like object``
    # out of CertificateStore.update (and a traceback from ``ingresslib check``): the probe
    # gave cadata the PEM decoded with "replace", whose U+FFFD is not ASCII. A certificate
    # saved with ``openssl x509 -text``'s dump (a subject's "Müller") has such bytes.
    crt, key = _pems(ca.issue_cert("cut.test"))
    crt = "subject=CN = Müller\n".encode() + crt
    [message] = _problems(crt, _cut(key))
    assert "tls.key holds a PEM block that cannot be read" in message, message
    assert "tls.crt" not in message
    for line in _body_lines(crt, key):
        assert line not in message


def test_non_ascii_bytes_inside_a_certificate_block_still_name_tls_crt(
        ca: trustme.CA) -> None:
    # Fails before: the same TypeError. A byte above 127 in the base64 is damage (OpenSSL's
    # "bad base64 decode"), and is tls.crt's.
    crt, key = _pems(ca.issue_cert("cut.test"))
    lines = crt.splitlines(True)
    lines[2] = "é".encode() + lines[2][2:]
    [message] = _problems(b"".join(lines), key)
    assert "tls.crt holds a PEM block that cannot be read" in message, message


@pytest.mark.parametrize("layout", ["key, chain", "chain, key"])
def test_a_tls_key_carrying_a_chain_cut_short_names_tls_key(
        ca: trustme.CA, layout: str) -> None:
    # Fails before: "unusable certificate: SSLError: [PEM: BAD_END_LINE] bad end line
    # (_ssl.c:3905)", naming neither half. A tls.key holding certificates too (a "key +
    # fullchain" file, which _new_context serves: they join the chain) cut short at its end:
    # OpenSSL fails while it reads the chain, and only tls.crt's certificates and tls.key's
    # key were probed, both whole.
    leaf = ca.issue_cert("cut.test")
    crt, key = _pems(leaf)
    chain = ca.cert_pem.bytes()
    bad_key = key + _cut(chain) if layout == "key, chain" else crt + key + _cut(chain)
    [message] = _problems(crt, bad_key)
    assert "tls.key holds a PEM block that cannot be read (bad end line)" in message, message
    assert "tls.crt" not in message and "_ssl.c" not in message
    for line in _body_lines(crt, key, chain):
        assert line not in message


def test_guard_a_tls_key_carrying_a_whole_chain_still_loads(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("cut.test")
    crt, key = _pems(leaf)
    res = Resources(ingresses=(_ingress("w", [(("cut.test",), "s")], rule_hosts=("cut.test",)),),
                    secrets=(_secret("s", crt, key + ca.cert_pem.bytes()),))
    store = CertificateStore()
    assert store.update(res) == []
    assert store.context_for("cut.test") is not store.default_context


# --- metrics: the application's families as generate_latest writes them -------------------------


def _app_lines(text: str, prefix: str) -> list[str]:
    """The lines (HELP, TYPE, samples) of the families whose name starts with ``prefix``."""
    out = []
    for ln in text.splitlines():
        name = ln.split(" ")[2] if ln.startswith("#") else re.split(r"[{ ]", ln, maxsplit=1)[0]
        if name.startswith(prefix):
            out.append(ln)
    return out


def test_a_gauge_histograms_gsum_and_gcount_are_gauges_as_generate_latest() -> None:
    # Fails before: render() wrote queue_gcount and queue_gsum inside the "histogram" family
    # (a histogram has no such samples in the text format: untyped series), where
    # generate_latest writes each as a gauge family of its own after it.
    m = Metrics()

    class Queue(Collector):
        def collect(self) -> Iterator[Metric]:
            g = GaugeHistogramMetricFamily("queue", "Queue depth", labels=["q"])
            g.add_metric(["x"], [("1", 2.0), ("+Inf", 3.0)], gsum_value=7.0)
            yield g

    m.registry.register(Queue())
    ours = _app_lines(m.render().decode(), "queue")
    theirs = _app_lines(generate_latest(m.registry).decode(), "queue")
    assert ours == theirs
    assert "# TYPE queue_gcount gauge" in ours and "# TYPE queue_gsum gauge" in ours


def test_a_collectors_own_timestamp_is_written_as_generate_latest() -> None:
    # Fails before: render() dropped it, so Prometheus stored the value at scrape time
    # (an exporter relaying another system's readings, with the time they were taken).
    m = Metrics()

    class Relayed(Collector):
        def collect(self) -> Iterator[Metric]:
            g = GaugeMetricFamily("relayed", "A relayed reading", labels=["src"])
            g.add_metric(["a"], 1.5, timestamp=1700000000.25)
            yield g

    m.registry.register(Relayed())
    ours = _app_lines(m.render().decode(), "relayed")
    assert ours == _app_lines(generate_latest(m.registry).decode(), "relayed")
    assert 'relayed{src="a"} 1.5 1700000000250' in ours


def test_guard_info_and_enum_read_as_generate_latest() -> None:
    m = Metrics()
    Info("build", "Build", registry=m.registry).info({"v": 'a"b\\c\nd', "w": "é"})
    assert (_app_lines(m.render().decode(), "build")
            == _app_lines(generate_latest(m.registry).decode(), "build"))


# --- metrics: render() writes the request families straight from the series ---------------------


def _reference(m: Metrics) -> bytes:
    """render() before 38c08dd: every family's samples formatted one by one."""
    from ingresslib._metrics import _escape_label, _go_float, _go_le

    out = []
    for fam in m.registry.collect():
        name, typ = fam.name, fam.type
        rename = {}
        if typ == "counter":
            if name in m._go_counters:
                rename[name + "_total"] = name
            else:
                name += "_total"
        elif typ == "unknown":
            typ = "untyped"
        doc = fam.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {typ}\n")
        for s in fam.samples:
            if s.name == fam.name + "_created":
                continue
            sname = rename.get(s.name, s.name)
            labels = dict(s.labels)
            if "le" in labels:
                labels["le"] = _go_le(labels["le"])
            lab = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            out.append(f"{sname}{{{lab}}} {_go_float(s.value)}\n" if lab
                       else f"{sname} {_go_float(s.value)}\n")
    return "".join(out).encode()


_TEXT = st.sampled_from(["", '"', "\\", "\n", "é", "le", "a\"b\\c\nd", "GET", "/x"]) | st.text(
    max_size=4)
_FLOATS = st.floats() | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e6, 5.0])
_BUCKETS = st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-5, 10**7),
                    max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(per_host=st.booleans(), classes=st.booleans(),
       prefix=st.sampled_from(["nginx_ingress_controller", "ingresslib"]),
       buckets=st.tuples(_BUCKETS, _BUCKETS, _BUCKETS), data=st.data())
def test_guard_render_reads_as_sample_by_sample_formatting(
        per_host: bool, classes: bool, prefix: str,
        buckets: tuple[list[float], list[float], list[float]], data: st.DataObject) -> None:
    from ingresslib._metrics import _Series, _Window

    m = Metrics(prefix, per_host=per_host, report_status_classes=classes,
                time_buckets=buckets[0], length_buckets=buckets[1], size_buckets=buckets[2])
    c = m._requests
    for _ in range(data.draw(st.integers(0, 3))):
        s = _Series(c.sizes)
        s.requests = data.draw(st.integers(0, 2**60))
        for h in s.hists:
            h.counts = [data.draw(st.integers(0, 3)) for _ in h.counts]
            h.total = data.draw(_FLOATS)
        c.series[tuple(data.draw(_TEXT) for _ in c.labels)] = s
    for _ in range(data.draw(st.integers(0, 2))):
        lk = tuple(data.draw(_TEXT) for _ in range(4))
        c.latency[lk] = [float(data.draw(st.integers(0, 5))), data.draw(_FLOATS)]
        if data.draw(st.booleans()):
            w = c.latency_window[lk] = _Window()
            for v in data.draw(st.lists(_FLOATS, max_size=3)):
                w.add(v, 0.0)
    c.clock = lambda: 1.0
    assert m.render() == _reference(m)


def test_guard_a_render_that_raises_midway_leaves_the_next_collect_alone() -> None:
    m = Metrics()
    boom = [False]  # registering collects once (auto_describe)

    class Broken(Collector):
        def collect(self) -> Iterator[Metric]:
            if boom[0]:
                raise RuntimeError("the application's collector broke")
            return iter(())

    m.registry.register(Broken())
    boom[0] = True  # after our families: render() raises with the text flag on
    with pytest.raises(RuntimeError):
        m.render()
    # The same thread now reads the registry as prometheus-client does: families, not text.
    names = [f.name for f in m._requests.collect()]
    assert names[0] == "nginx_ingress_controller_requests"
    boom[0] = False
    assert m.render() == _reference(m)


def test_guard_two_renders_at_once_in_two_threads() -> None:
    m = Metrics()
    from ingresslib._metrics import _Series

    for i in range(30):
        m._requests.series[("200", "GET", f"/p{i}", "ns", "i", "s", "", "h.test")] = _Series(
            m._requests.sizes)
    expected = _reference(m)
    started = threading.Barrier(2)
    got: list[bytes] = []

    def run() -> None:
        started.wait(10)
        for _ in range(20):
            got.append(m.render())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 40 and all(g == expected for g in got)


# --- examples/embedded_proxy.py -------------------------------------------------------------------

# The example run as is, with MetricsServer.start sending the process a signal first: the moment
# "listening on" is printed and the metrics listener is still being set up.
_SIGNAL_AT_START = """
import asyncio, os, runpy, signal, sys
import ingresslib
real = ingresslib.MetricsServer.start
async def start(self):
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return await real(self)
ingresslib.MetricsServer.start = start
main = runpy.run_path(sys.argv[2])["main"]  # not run as __main__: main() is called here
sys.exit(asyncio.run(main(sys.argv[3:])))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the example is Unix only")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_the_example_handles_a_signal_sent_as_soon_as_it_listens(
        tmp_path: Path, sig: str) -> None:
    # Fails before: the handlers were installed after the metrics listener started, so a
    # SIGTERM (a rolling restart) or SIGHUP (a reload) sent once "listening on" was printed
    # met Python's default: the process killed (-15, -1), requests in flight cut, no reload.
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFESTS.format(path="/", port=9))
    p = subprocess.Popen(
        [sys.executable, "-c", _SIGNAL_AT_START, sig, str(EXAMPLE), "-f", str(manifest),
         "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        with kill_after(p, 60):
            if sig == "SIGHUP":
                assert p.stderr is not None
                seen = []
                for line in iter(p.stderr.readline, ""):
                    seen.append(line)
                    if line.startswith("reloaded"):
                        break
                assert seen and seen[-1].startswith("reloaded: 1 Ingress"), "".join(seen)
                p.send_signal(signal.SIGTERM)
            err = stderr_until_exit(p, 30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert p.returncode == 0, err
    assert err.rstrip().endswith("stopped")
