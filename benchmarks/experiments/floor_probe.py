"""How fast this machine runs the call floor, next to the reference machine's figure.

    python benchmarks/experiments/floor_probe.py [seconds]

``/work/shared/bench/README.md`` quotes "a bound ``dict.get(h, p)`` 31" ns per lookup on "a
2-core machine of the kind the project runs on", the machine the lookup targets were set on.
This loop is that floor at its cheapest: 1,000 host strings made once (their hashes cached,
all of them in L1/L2), looked up again and again from a ``for`` loop for a few seconds. It
prints the median and the minimum ns per lookup over the passes: the minimum is this machine
at its quietest moment in the window, the median what a benchmark running then would see.
"""

from __future__ import annotations

import statistics
import sys
import time

REFERENCE_NS = 31.0


def main(seconds: float = 3.0) -> None:
    table = {f"host{i}.example.com": i for i in range(1000)}
    hosts = [f"host{(i * 7919) % 2000}.example.com" for i in range(1000)]  # half of them miss
    get = table.get
    passes: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        for h in hosts:
            get(h, "/p")
        passes.append((time.perf_counter() - t0) * 1e9 / len(hosts))
    med, low = statistics.median(passes), min(passes)
    print(f"{time.strftime('%H:%M:%S')} dict.get floor: median {med:.1f} ns, min {low:.1f} ns "
          f"({med / REFERENCE_NS:.1f}x / {low / REFERENCE_NS:.1f}x the reference machine's "
          f"{REFERENCE_NS:.0f} ns; {len(passes)} passes)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
