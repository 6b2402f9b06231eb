#!/usr/bin/env python3
"""Load benchmark: wrk against ingresslib serve, nginx, an aiohttp proxy and the upstream direct.

Loopback only, bounded (about 10 s per target by default). Needs ``wrk`` and ``nginx``
(``apt-get update && apt-get install -y wrk nginx``; installed automatically when missing and
running as root), and ``aiohttp`` for the comparison proxy.

    python benchmarks/load/run.py                    # the comparison table (README.md)
    python benchmarks/load/run.py --duration 5       # quicker
    python benchmarks/load/run.py --chaos 60         # 60 s: an endpoint killed and restarted,
                                                     # manifests rewritten every second
    python benchmarks/load/run.py --profile 10       # cProfile of ingresslib serve under load

Layout on a 2-core machine: every proxy is pinned to core 0 (``taskset -c 0``); wrk and the
upstream share core 1. The upstream is nginx (1 worker) answering ``return 200`` with a 20-byte
body: the fastest upstream at hand, so the proxy is what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PY = sys.executable
PROXY_CORE, CLIENT_CORE = "0", "1"


def ensure_tools() -> None:
    missing = [t for t in ("wrk", "nginx") if shutil.which(t) is None and not Path("/usr/sbin/" + t).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {missing}: run apt-get update && apt-get install -y wrk nginx")
    print("installing wrk and nginx with apt-get ...", file=sys.stderr)
    subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "wrk", "nginx"], check=True, stdout=subprocess.DEVNULL)


def nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def nginx_conf(tmp: Path, name: str, server_block: str, extra_http: str = "") -> Path:
    d = tmp / name
    d.mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  {extra_http}
  server {{
    listen 127.0.0.1:{{port}};
    {server_block}
  }}
}}
""")
    return conf


def start_nginx(conf: Path, port: int, core: str) -> subprocess.Popen[bytes]:
    text = conf.read_text().replace("{port}", str(port))
    conf.write_text(text)
    p = subprocess.Popen(["taskset", "-c", core, nginx_bin(), "-c", str(conf), "-p", str(conf.parent)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def bench_manifests(path: Path, upstream_ports: list[int], note: str = "") -> None:
    slices = "".join(f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: up-{i}, labels: {{kubernetes.io/service-name: up}}}}
addressType: IPv4
ports: [{{name: http, port: {p}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
""" for i, p in enumerate(upstream_ports))
    text = f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  annotations: {{bench/note: "{note}"}}
spec:
  rules:
  - host: bench.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: up, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: up}}
spec: {{ports: [{{name: http, port: 80, targetPort: http}}]}}
{slices}"""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(port: int, duration: float, connections: int = 32, host: str = "bench.test") -> dict[str, float]:
    cmd = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s",
           "--latency", "--timeout", "5s", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res: dict[str, float] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        res[f"p{pct}_ms"] = _ms(re.search(rf"\s{pct}%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    res["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = float(sum(int(x) for x in m.groups())) if m else 0.0
    return res


def measure(name: str, port: int, pid: int | None, duration: float) -> dict[str, float]:
    run_wrk(port, 1.0)  # warm-up: pools filled, code paths hot
    cpu0 = proc_cpu(pid) if pid else 0.0
    t0 = time.monotonic()
    r = run_wrk(port, duration)
    elapsed = time.monotonic() - t0
    cpu = proc_cpu(pid) - cpu0 if pid else float("nan")
    r["cpu_pct"] = 100.0 * cpu / elapsed
    # CPU time per request: the figure that survives a busy machine (throughput does not).
    r["cpu_us_per_req"] = 1e6 * cpu / r["requests"]
    print(f"{name:28} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
          f"cpu {r['cpu_pct']:5.0f} %  {r['cpu_us_per_req']:6.1f} us/req  "
          f"errors {int(r['non2xx'] + r['socket_errors'])}", file=sys.stderr)
    return r


def stop(p: subprocess.Popen[bytes] | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def start_ingresslib(tmp: Path, upstream_ports: list[int], *extra: str, log_level: str = "warning",
                     stderr: object = None, root: Path = ROOT) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    mdir = tmp / "manifests"
    mdir.mkdir(exist_ok=True)
    bench_manifests(mdir / "bench.yaml", upstream_ports)
    cmd = ["taskset", "-c", PROXY_CORE, PY, *extra, "-m", "ingresslib", "serve", "-f", str(mdir),
           "--listen", f"127.0.0.1:{port}", "--access-log", "off", "--log-level", log_level]
    # cwd: ``python -m ingresslib`` imports the package of that tree (``--serve-ab`` runs two).
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, cwd=root)  # type: ignore[call-overload]
    wait_port(port)
    return p, port


def start_upstream(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The upstream every target proxies to: nginx answering a 20-byte body, on the client
    core."""
    port = free_port()
    return start_nginx(nginx_conf(
        tmp, "upstream",
        'location / { default_type text/plain; return 200 "hello from upstream\\n"; }'),
        port, CLIENT_CORE), port


def compare(duration: float, rounds: int = 1) -> dict[str, dict[str, float]]:
    """All targets started once, measured one after the other, ``rounds`` times (interleaved,
    so background load on a shared machine hits them alike); medians reported."""
    import statistics

    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ingresslib-load-") as t:
        tmp = Path(t)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            up, up_port = start_upstream(tmp)
            procs.append(up)
            ngx_port = free_port()
            ngx = start_nginx(nginx_conf(
                tmp, "proxy",
                "location / { proxy_pass http://up; proxy_http_version 1.1; "
                "proxy_set_header Connection \"\"; proxy_set_header Host $host; "
                "proxy_set_header X-Forwarded-For $remote_addr; }",
                f"upstream up {{ server 127.0.0.1:{up_port}; keepalive 320; }}"), ngx_port, PROXY_CORE)
            procs.append(ngx)
            aio_port = free_port()
            aio = subprocess.Popen(["taskset", "-c", PROXY_CORE, PY, str(HERE / "aiohttp_proxy.py"),
                                    str(aio_port), f"http://127.0.0.1:{up_port}"])
            procs.append(aio)
            wait_port(aio_port)
            ing, ing_port = start_ingresslib(tmp, [up_port])
            procs.append(ing)
            targets = [("upstream direct (nginx)", up_port, None), ("nginx 1 worker", ngx_port, ngx.pid),
                       ("aiohttp proxy", aio_port, aio.pid), ("ingresslib serve", ing_port, ing.pid)]
            for r in range(rounds):
                print(f"round {r + 1}/{rounds}", file=sys.stderr)
                for name, port, pid in targets:
                    runs.setdefault(name, []).append(measure(name, port, pid, duration))
        finally:
            for p in procs:
                stop(p)
    results = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in runs.items()}
    a, i, n = results["aiohttp proxy"], results["ingresslib serve"], results["nginx 1 worker"]
    print("medians:", file=sys.stderr)
    for name, r in results.items():
        print(f"  {name:26} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
              f"cpu {r['cpu_pct']:4.0f} %  {r['cpu_us_per_req']:6.1f} us/req", file=sys.stderr)
    print(f"ingresslib / aiohttp: {i['rps'] / a['rps']:.2f}x rps, {a['cpu_us_per_req'] / i['cpu_us_per_req']:.2f}x "
          f"CPU efficiency, p99 {i['p99_ms']:.2f} vs {a['p99_ms']:.2f} ms; ingresslib / nginx: "
          f"{i['rps'] / n['rps']:.2f}x rps", file=sys.stderr)
    return results


def serve_ab(trees: list[Path], duration: float, rounds: int) -> dict[str, dict[str, float]]:
    """``ingresslib serve`` from two source trees (each with its extensions built in place),
    the same upstream, measured one after the other for ``rounds`` interleaved rounds: the
    A/B of a change to the proxy. Medians reported."""
    import statistics

    runs: dict[str, list[dict[str, float]]] = {str(t): [] for t in trees}
    with tempfile.TemporaryDirectory(prefix="ingresslib-ab-") as t:
        tmp = Path(t)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            up, up_port = start_upstream(tmp)
            procs.append(up)
            targets = []
            for i, tree in enumerate(trees):
                d = tmp / f"tree{i}"
                d.mkdir()
                p, port = start_ingresslib(d, [up_port], root=tree)
                procs.append(p)
                targets.append((str(tree), port, p.pid))
            for r in range(rounds):
                print(f"round {r + 1}/{rounds}", file=sys.stderr)
                for name, port, pid in targets:
                    runs[name].append(measure(name[-26:], port, pid, duration))
        finally:
            for p in procs:
                stop(p)
    results = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in runs.items()}
    (a, ra), (b, rb) = results.items()
    print(f"medians: {a} {ra['cpu_us_per_req']:.1f} us/req, {b} {rb['cpu_us_per_req']:.1f} us/req "
          f"(ratio {rb['cpu_us_per_req'] / ra['cpu_us_per_req']:.2f}); req/s {ra['rps']:.0f} vs "
          f"{rb['rps']:.0f}", file=sys.stderr)
    return results


def chaos(duration: float) -> dict[str, float]:
    """Zero failed requests while one endpoint is killed and restarted and the manifests are
    rewritten every second."""
    echo = ("import asyncio,sys\nfrom ingresslib._demo import start_echo\n"
            "async def m():\n    b=await start_echo('up','pod-'+sys.argv[1],port=int(sys.argv[2]))\n"
            "    await asyncio.Event().wait()\nasyncio.run(m())\n")
    ports = [free_port() for _ in range(3)]

    def start_pod(i: int) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["taskset", "-c", CLIENT_CORE, PY, "-c", echo, str(i), str(ports[i])], cwd=ROOT)
        wait_port(ports[i])
        return p

    with tempfile.TemporaryDirectory(prefix="ingresslib-chaos-") as t:
        tmp = Path(t)
        pods: list[subprocess.Popen[bytes]] = []
        ing: subprocess.Popen[bytes] | None = None
        log = open(tmp / "serve.log", "wb")
        kills = reloads = 0
        try:
            pods = [start_pod(i) for i in range(3)]
            try:
                ing, port = start_ingresslib(tmp, ports, log_level="info", stderr=log)
            except RuntimeError:
                log.flush()
                sys.exit("ingresslib serve did not start:\n" + (tmp / "serve.log").read_text())
            wrk = subprocess.Popen(
                ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", "-c32", f"-d{int(duration)}s", "--latency",
                 "--timeout", "5s", "-H", "Host: bench.test", f"http://127.0.0.1:{port}/"],
                stdout=subprocess.PIPE, text=True)
            t0 = time.monotonic()
            while time.monotonic() - t0 < duration - 1:
                time.sleep(1.0)
                bench_manifests(tmp / "manifests" / "bench.yaml", ports, note=str(reloads))
                reloads += 1
                if reloads % 5 == 2:   # kill pod 1 (SIGKILL: connections reset mid-request) ...
                    pods[1].kill()
                    pods[1].wait()
                    kills += 1
                elif reloads % 5 == 4:  # ... and bring it back two seconds later
                    pods[1] = start_pod(1)
            out = wrk.communicate(timeout=duration + 30)[0]
        finally:
            stop(ing)
            for p in pods:
                p.kill()
                p.wait()
            log.close()
        applied = (tmp / "serve.log").read_text().count("reloaded:")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock = sum(int(x) for x in m.groups()) if m else 0
    print(f"chaos {duration:.0f} s: {total} requests ({rps:.0f}/s), {kills} kills, {reloads} manifest "
          f"rewrites ({applied} reloads applied by the server), "
          f"non-2xx {non2xx}, socket errors {sock}", file=sys.stderr)
    return {"requests": total, "rps": rps, "kills": kills, "rewrites": reloads, "reloads": applied,
            "non2xx": non2xx,
            "socket_errors": sock}


def profile(duration: float) -> None:
    """cProfile ingresslib serve under wrk load; prints the top functions by own time."""
    with tempfile.TemporaryDirectory(prefix="ingresslib-prof-") as t:
        tmp = Path(t)
        upstream, up_port = start_upstream(tmp)
        out = tmp / "prof.out"
        ing, port = start_ingresslib(tmp, [up_port], "-m", "cProfile", "-o", str(out))
        try:
            run_wrk(port, duration)
        finally:
            ing.send_signal(signal.SIGINT)
            ing.wait(20)
            stop(upstream)
        import pstats

        st = pstats.Stats(str(out))
        st.sort_stats("tottime").print_stats(20)
        print(breakdown(st))


def breakdown(st: "pstats.Stats") -> str:  # noqa: F821 - imported lazily
    """Where the proxy's busy time goes: sans-IO core entry points (cumulative), the epoll wait
    (idle), and the rest (the asyncio server, the event loop, socket syscalls)."""
    core_entries = {"receive_data", "upstream_data", "upstream_connected", "upstream_failed",
                    "upstream_eof", "receive_eof", "timer_expired", "start", "connection", "abort"}
    core = poll = total = send = recv = 0.0
    for (file, _line, name), (_cc, _nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        if file.endswith("proxy/_connection.py") and name in core_entries:
            core += ct
        elif name == "<method 'poll' of 'select.epoll' objects>":
            poll += tt
        elif name == "run_forever" and file.endswith("base_events.py"):
            total = max(total, ct)
        elif name == "<method 'send' of '_socket.socket' objects>":
            send += tt
        elif name == "<method 'recv' of '_socket.socket' objects>":
            recv += tt
    busy = total - poll
    return (f"busy {busy:.2f} s: core {core:.2f} s ({100 * core / busy:.0f} %), socket send+recv "
            f"{send + recv:.2f} s ({100 * (send + recv) / busy:.0f} %), server + event loop "
            f"{busy - core - send - recv:.2f} s ({100 * (busy - core - send - recv) / busy:.0f} %)")


def server_only(duration: float) -> dict[str, float]:
    """The asyncio server with a canned core (null_core.py): the server's own cost per request."""
    with tempfile.TemporaryDirectory(prefix="ingresslib-null-") as t:
        tmp = Path(t)
        u, up = start_upstream(tmp)
        port = free_port()
        p = subprocess.Popen(["taskset", "-c", PROXY_CORE, PY, str(HERE / "null_core.py"), str(port), str(up)])
        try:
            wait_port(port)
            return measure("server with a canned core", port, p.pid, duration)
        finally:
            stop(p)
            stop(u)


def core_only(n: int = 20000) -> float:
    """The sans-IO core alone, in process (no sockets): CPU microseconds per proxied request
    (client request in, upstream request out, upstream response in, client response out)."""
    sys.path.insert(0, str(ROOT))
    from ingresslib._load import parse_manifests
    from ingresslib._router import Router
    from ingresslib.proxy._actions import OpenUpstream
    from ingresslib.proxy._connection import Proxy

    with tempfile.TemporaryDirectory() as t:
        path = Path(t) / "m.yaml"
        bench_manifests(path, [9999])
        # records=False: as under `ingresslib serve --access-log off` without metrics (nobody
        # consumes the per-request records, so the core does not build them).
        proxy = Proxy(Router(parse_manifests(path.read_text())), records=False)
    req = b"GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: wrk\r\n\r\n"
    resp = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 13:18:28 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 20\r\nConnection: keep-alive\r\n\r\n"
            b"hello from upstream\n")
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)

    def one(now: float) -> None:
        nonlocal conn
        if conn.closed:  # keep-alive-requests reached
            conn = proxy.connection(("127.0.0.1", 5555), now=now)
        conn.start(now)
        cid = [a.conn_id for a in conn.receive_data(req, now) if type(a) is OpenUpstream][0]
        conn.upstream_connected(cid, now, reused=True)
        conn.upstream_data(cid, resp, now)

    for i in range(2000):
        one(float(i))
    t0 = time.process_time()
    for i in range(n):
        one(float(i))
    us = (time.process_time() - t0) / n * 1e6
    print(f"sans-IO core alone (in process)  {us:6.1f} us/req", file=sys.stderr)
    return us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    ap.add_argument("--chaos", type=float, default=None, metavar="SECONDS")
    ap.add_argument("--profile", type=float, default=None, metavar="SECONDS")
    ap.add_argument("--server-only", action="store_true",
                    help="measure the asyncio server with a canned core (no HTTP parsing)")
    ap.add_argument("--core-only", action="store_true",
                    help="measure the sans-IO core in process (no sockets, no wrk)")
    ap.add_argument("--serve-ab", type=Path, nargs=2, default=None, metavar=("OLD", "NEW"),
                    help="ingresslib serve from two source trees (extensions built in place), "
                         "measured alternately (--rounds, --duration)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    if args.core_only:
        core_only()
        return
    if (os.cpu_count() or 1) < 2:
        global CLIENT_CORE
        CLIENT_CORE = "0"
    ensure_tools()
    if args.profile:
        profile(args.profile)
        return
    if args.server_only:
        server_only(args.duration)
        return
    if args.serve_ab:
        ab = serve_ab(args.serve_ab, args.duration, args.rounds)
        if args.json:
            args.json.write_text(json.dumps(ab, indent=2) + "\n")
        return
    res: object = chaos(args.chaos) if args.chaos else compare(args.duration, args.rounds)
    if args.json:
        def clean(x: object) -> object:  # NaN (no CPU figure for the direct run) is not JSON
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            return None if isinstance(x, float) and x != x else x
        args.json.write_text(json.dumps(clean(res), indent=2) + "\n")
    if args.chaos:
        r = res if isinstance(res, dict) else {}
        sys.exit(0 if r.get("non2xx") == 0 and r.get("socket_errors") == 0 else 1)


if __name__ == "__main__":
    main()
