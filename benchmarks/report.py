"""Render benchmark results (from a run, or from ``--benchmark-json`` output) as tables.

    python benchmarks/report.py results.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from typing import Any

ORDER = ["cython", "python", "scan", "matchit", "falcon", "sanic", "dict.get", "RouteTable.match",
         "Match objects alone"]


def rows_from_json(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        data = json.load(f)
    rows = []
    for b in data["benchmarks"]:
        extra = b.get("extra_info", {})
        if "lookups_per_round" in extra:
            per = 1e9 / extra["lookups_per_round"]
            rows.append(dict(extra, ns=b["stats"]["median"] * per, ns_min=b["stats"]["min"] * per))
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lookups = [r for r in rows if "ns" in r]
    out: list[str] = []
    if lookups:
        # Median over seeds of each (router, size) median.
        table: dict[tuple[str, int], list[float]] = defaultdict(list)
        agree: dict[tuple[str, int], list[float]] = defaultdict(list)
        for r in lookups:
            table[(r["router"], r["rules"])].append(r["ns"])
            if r.get("agreement") is not None:
                agree[(r["router"], r["rules"])].append(r["agreement"])
        sizes = sorted({s for _, s in table})
        routers = [n for n in ORDER if any((n, s) in table for s in sizes)]
        out.append("ns per lookup (median of per-seed medians; seeds: "
                   + ", ".join(str(s) for s in sorted({r["seed"] for r in lookups})) + ")")
        out.append(f"| router | " + " | ".join(f"{s:,} rules" for s in sizes) + " |")
        out.append("|---|" + "---:|" * len(sizes))
        for name in routers:
            cells = []
            for s in sizes:
                v = table.get((name, s))
                cells.append(f"{statistics.median(v):,.0f}" if v else "-")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        if ("cython", sizes[0]) in table:
            out.append("")
            out.append("ratios (cython = 1):")
            out.append(f"| ratio | " + " | ".join(f"{s:,}" for s in sizes) + " |")
            out.append("|---|" + "---:|" * len(sizes))
            for name in routers:
                if name == "cython":
                    continue
                cells = []
                for s in sizes:
                    c, v = table.get(("cython", s)), table.get((name, s))
                    cells.append(f"{statistics.median(v) / statistics.median(c):.1f}x" if c and v else "-")
                out.append(f"| {name} / cython | " + " | ".join(cells) + " |")
            c = table
            out.append("")
            for name in ("cython", "RouteTable.match", "Match objects alone"):
                if (name, 100) in c and (name, 100_000) in c:
                    small = statistics.median(c[(name, 100)])
                    big = statistics.median(c[(name, 100_000)])
                    out.append(f"{name} 100,000 rules / 100 rules: {big / small:.2f}x "
                               f"(+{big - small:,.0f} ns)")
            # On a shared machine the floor (a bound dict.get called from the same loop) moves
            # with the load: the figure above it is the matcher's own cost.
            if any(("dict.get", s) in c for s in sizes):
                out.append("")
                out.append("ns above the dict.get floor of the same run:")
                out.append(f"| router | " + " | ".join(f"{s:,}" for s in sizes) + " |")
                out.append("|---|" + "---:|" * len(sizes))
                for name in ("cython", "RouteTable.match"):
                    cells = []
                    for s in sizes:
                        v, f = c.get((name, s)), c.get(("dict.get", s))
                        cells.append(f"{statistics.median(v) - statistics.median(f):,.0f}"
                                     if v and f else "-")
                    out.append(f"| {name} | " + " | ".join(cells) + " |")
        # The quietest round of each (router, size): on a shared machine the minimum moves far
        # less with the load than the median does (see README.md, "Session 5").
        quiet: dict[tuple[str, int], list[float]] = defaultdict(list)
        for r in lookups:
            if "ns_min" in r and r["router"] in ("cython", "RouteTable.match", "dict.get"):
                quiet[(r["router"], r["rules"])].append(r["ns_min"])
        if quiet:
            out.append("")
            out.append("ns per lookup in the quietest round (median of per-seed minima):")
            out.append(f"| router | " + " | ".join(f"{s:,}" for s in sizes) + " |")
            out.append("|---|" + "---:|" * len(sizes))
            for name in ("cython", "RouteTable.match", "dict.get"):
                cells = [f"{statistics.median(quiet[(name, s)]):,.0f}" if (name, s) in quiet else "-"
                         for s in sizes]
                out.append(f"| {name} | " + " | ".join(cells) + " |")
        if agree:
            out.append("")
            out.append("agreement with the pure twin over the request stream (other routers only "
                       "approximate Ingress semantics):")
            out.append(", ".join(f"{n}@{s:,}: {100 * statistics.median(v):.1f} %"
                                 for (n, s), v in sorted(agree.items()) if min(v) < 1.0) or "all 100 %")
    others = [r for r in rows if "ns" not in r]
    for r in others:
        out.append(f"{r['what']}: " + ", ".join(f"{k}={v}" for k, v in r.items() if k != "what"))
    return "\n".join(out)


if __name__ == "__main__":
    print(render(rows_from_json(sys.argv[1])))
