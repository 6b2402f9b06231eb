"""How much of ``RouteTable.match``'s growth with the table is the benchmark's own stream
competing for the caches.

``bench_table.py`` keeps its 20,000-request stream as (host bytes, path bytes) tuples: about
3.9 MB, which each pass over the stream reads again in the untimed setup. This script times
``RouteTable.match`` exactly as ``test_route_table_match`` does (60 rounds of 1,000 fresh
requests after 2 warm-up rounds, the median per seed, then the median over seeds 1-3), with
the stream kept either that way (``tuples``) or as one ASCII blob with an offset array
(``blob``: about 1 MB). The lookups, the requests and the fresh strings are the same; only the
setup's memory traffic differs. Run the two alternately, in separate processes:

    for i in 1 2 3; do
        python benchmarks/stream_footprint.py tuples 100,10000,100000
        python benchmarks/stream_footprint.py blob 100,10000,100000
    done
"""

from __future__ import annotations

import array
import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from bench_match import STREAM  # noqa: E402
from bench_table import resources  # noqa: E402

from ingresslib._table import RouteTable  # noqa: E402

Setup = Callable[[int], list[tuple[str, str]]]


def tuples(stream: list[tuple[bytes, bytes]]) -> Setup:
    def chunk(pos: int) -> list[tuple[str, str]]:
        return [(h.decode("ascii"), p.decode("ascii")) for h, p in stream[pos : pos + 1000]]

    return chunk


def blob(stream: list[tuple[bytes, bytes]]) -> Setup:
    data = b"".join(h + p for h, p in stream)
    bounds = array.array("q")  # host start, path start, per request; then the end
    at = 0
    for h, p in stream:
        bounds.append(at)
        bounds.append(at + len(h))
        at += len(h) + len(p)
    bounds.append(at)
    view = memoryview(data)

    def chunk(pos: int) -> list[tuple[str, str]]:
        b = bounds
        return [(str(view[b[2 * i] : b[2 * i + 1]], "ascii"), str(view[b[2 * i + 1] : b[2 * i + 2]], "ascii"))
                for i in range(pos, pos + 1000)]

    return chunk


def median_ns(n: int, seed: int, kind: str) -> float:
    res, stream = resources(n, seed)
    make = (tuples if kind == "tuples" else blob)(stream)
    if kind != "tuples":
        del stream  # only the blob stays (resources() caches the tuples: drop that too)
        resources.cache_clear()
    match = RouteTable.build(res).match
    times = []
    pos = 0
    for r in range(62):
        requests = make(pos)
        pos = (pos + 1000) % (STREAM - 1000)
        t0 = time.perf_counter()
        for host, path in requests:
            match(host, path)
        if r >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e9 / 1000


def main(kind: str, sizes: list[int]) -> None:
    cells = [f"{n}: {statistics.median(median_ns(n, s, kind) for s in (1, 2, 3)):.0f}" for n in sizes]
    print(f"{kind:6}  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")])
