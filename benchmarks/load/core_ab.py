#!/usr/bin/env python3
"""The sans-IO core of two source trees, A/B: CPU per proxied request, alternating in blocks.

``run.py --core-only`` run from each tree in turn gives one figure per process start; on a
shared machine a burst of another job lands on one side. Here one worker process per tree
(each imports its own ``ingresslib``, extensions built in place) is started once and warmed
up, and the driver asks them in turn for a block of requests, many times: every block of one
tree has a neighbour of the other tree a second away, and the figure quoted is the median of
the per-pair ratios.

    python benchmarks/load/core_ab.py ab OLD NEW [--blocks 30] [--n 5000] [--json FILE]
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \\
        python benchmarks/load/core_ab.py count TREE [--n 2000]    # instructions / n per request
    python benchmarks/load/core_ab.py ops TREE --n 500 --json F    # Python bytecodes per request,
                                                                   # by function (deterministic)

Each request is ``run.py --core-only``'s (the same manifests, GET with a Host and a
User-Agent, a keep-alive 200 with a 20-byte body, no records). ``--case post`` adds a
request body (Content-Length 1,000) and a chunked response instead, for the body paths.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any, Callable

HERE = Path(__file__).resolve().parent

REQUESTS = {
    "get": (b"GET / HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: wrk\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 13:18:28 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 20\r\nConnection: keep-alive\r\n\r\n"
            b"hello from upstream\n"),
    "post": (b"POST /upload HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: wrk\r\n"
             b"Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000,
             b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 13:18:28 GMT\r\n"
             b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
             b"14\r\nhello from upstream\n\r\n0\r\n\r\n"),
}


def core(tree: Path, case: str, warmup: int = 2000) -> Callable[[float], None]:
    """One proxied request through ``tree``'s core (as run.py's core_only)."""
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(HERE))
    import run  # bench_manifests (the same text in every tree since session 11)
    from ingresslib._load import parse_manifests
    from ingresslib._router import Router
    from ingresslib.proxy._actions import OpenUpstream
    from ingresslib.proxy._connection import Proxy

    import ingresslib
    assert Path(ingresslib.__file__).resolve().parent.parent == tree.resolve(), ingresslib.__file__
    with tempfile.TemporaryDirectory() as t:
        path = Path(t) / "m.yaml"
        run.bench_manifests(path, [9999])
        proxy = Proxy(Router(parse_manifests(path.read_text())), records=False)
    req, resp = REQUESTS[case]
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)

    def one(now: float) -> None:
        nonlocal conn
        if conn.closed:  # keep-alive-requests reached
            conn = proxy.connection(("127.0.0.1", 5555), now=now)
        conn.start(now)
        cid = [a.conn_id for a in conn.receive_data(req, now) if type(a) is OpenUpstream][0]
        conn.upstream_connected(cid, now, reused=True)
        conn.upstream_data(cid, resp, now)

    for i in range(warmup):
        one(float(i))
    return one


def worker(tree: Path, case: str, warmup: int) -> None:
    one = core(tree, case, warmup)
    clock = itertools.count(10_000)
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        t0 = time.process_time()
        for _ in range(n):
            one(float(next(clock)))
        print(f"{(time.process_time() - t0) / n * 1e6:.3f}", flush=True)


def count(tree: Path, case: str, n: int, warmup: int) -> None:
    one = core(tree, case, warmup)
    collections.deque(itertools.starmap(one, [(float(i),) for i in range(n)]), maxlen=0)


def ops(tree: Path, case: str, n: int, warmup: int) -> dict[str, float]:
    """Python bytecodes executed per request, by function (``sys.settrace`` with opcode
    events): deterministic, so two trees' counts differ by what their code does, not by the
    machine's load. (C functions, regexes and h11's C-level work are not counted: valgrind's
    ``count`` gives the whole.)"""
    one = core(tree, case, warmup)
    counts: collections.Counter[str] = collections.Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        key = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}"

        def local(f: FrameType, e: str, a: Any) -> Any:
            if e == "opcode":
                counts[key] += 1
            return local
        return local

    sys.settrace(trace)
    try:
        for i in range(n):
            one(float(warmup + i))
    finally:
        sys.settrace(None)
    per = {k: v / n for k, v in counts.most_common()}
    print(f"{tree}: {sum(per.values()):.1f} bytecodes per request ({case})", file=sys.stderr)
    return per


def ab(trees: list[Path], case: str, blocks: int, n: int, cpu: str | None,
       warmup: int = 2000) -> dict[str, object]:
    cmd_pre = ["taskset", "-c", cpu] if cpu is not None else []
    procs = [subprocess.Popen(cmd_pre + [sys.executable, __file__, "worker", str(t), "--case", case,
                                              "--warmup", str(warmup)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for t in trees]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        per: list[list[float]] = [[], []]
        for b in range(blocks):
            order = (0, 1) if b % 2 == 0 else (1, 0)  # ABBA: neither side always goes first
            for i in order:
                p = procs[i]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(f"{n}\n")
                p.stdin.flush()
                per[i].append(float(p.stdout.readline()))
        ratios = [b / a for a, b in zip(*per)]
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(10)
    old_med, new_med = statistics.median(per[0]), statistics.median(per[1])
    ratio = statistics.median(ratios)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios
    print(f"{case}: old {old_med:.1f} us/req, new {new_med:.1f} us/req; new/old per pair: "
          f"median {ratio:.3f}, quartiles {', '.join(f'{q:.3f}' for q in quartiles)}",
          file=sys.stderr)
    return {"case": case, "blocks": blocks, "requests_per_block": n,
            "old": str(trees[0]), "new": str(trees[1]), "old_us": per[0], "new_us": per[1],
            "old_median_us": old_med, "new_median_us": new_med,
            "ratio_median": ratio, "ratio_quartiles": quartiles}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["ab", "worker", "count", "ops"])
    ap.add_argument("trees", type=Path, nargs="+")
    ap.add_argument("--case", choices=sorted(REQUESTS), default="get")
    ap.add_argument("--blocks", type=int, default=30)
    ap.add_argument("--n", type=int, default=5000, help="requests per block (count: requests counted)")
    ap.add_argument("--warmup", type=int, default=2000, help="requests before measuring")
    ap.add_argument("--cpu", default=None, help="pin both workers to this CPU (taskset -c)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.mode == "worker":
        worker(args.trees[0], args.case, args.warmup)
    elif args.mode == "count":
        count(args.trees[0], args.case, args.n, args.warmup)
    elif args.mode == "ops":
        per = ops(args.trees[0], args.case, args.n, args.warmup)
        if args.json:
            args.json.write_text(json.dumps(per, indent=2) + "\n")
    else:
        if len(args.trees) != 2:
            ap.error("ab takes OLD and NEW")
        res = ab(args.trees, args.case, args.blocks, args.n, args.cpu, args.warmup)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
