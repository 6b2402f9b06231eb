"""How many nodes a lookup reads: the byte-level radix tree against a segment-level tree.

    python benchmarks/experiments/tree_levels.py [sizes]      # default 100,10000,100000

For the benchmark's tables and request streams (seed 1), per routed request:
- the nodes of the compiled matcher's byte-level radix tree whose whole label the path matches
  (the root included): the dependent node reads of the walk;
- of those, the ones that end within "/" + the first path segment (the root excluded): what a
  first-segment jump table would skip;
- the nodes of a segment-level tree (one node per segment boundary of a key, the root
  included) that the path reaches, plus the one failed probe that ends most walks there;
- the byte-tree nodes a two-byte stride at wide nodes (more than 5 children) would skip:
  a wide node's child with a one-byte label, no key of its own and children of its own.

The trees are rebuilt here in Python from the same keys as ``Matcher`` (exact keys as they
are, prefix keys without their trailing "/", the prefix "/" as ""), with the same branching.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _routers import host_groups  # noqa: E402
from gen_rules import gen_requests, gen_table  # noqa: E402

Node = dict[str, Any]


def radix(keys: set[str]) -> Node:
    """The byte-level compressed tree of _match.pyx's _build_tree (labels only)."""

    def build(ks: list[str], depth: int, label: str) -> Node:
        if ks and len(ks[0]) == depth:
            ks = ks[1:]
        children = []
        i = 0
        while i < len(ks):
            j = i
            while j < len(ks) and ks[j][depth] == ks[i][depth]:
                j += 1
            first, last = ks[i], ks[j - 1]
            end = depth + 1
            while end < min(len(first), len(last)) and first[end] == last[end]:
                end += 1
            children.append(build(ks[i:j], end, first[depth:end]))
            i = j
        return {"label": label, "children": children}

    return build(sorted(keys), 0, "")


def byte_walk(tree: Node, keys: set[str], path: str) -> tuple[int, int, int]:
    """(nodes whose label matched, of which ending within "/" + the first segment, of which
    a two-byte stride at wide nodes would skip)."""
    first_end = path.find("/", 1)
    first_end = len(path) if first_end < 0 else first_end
    node, i, nodes, within, stride = tree, 0, 1, 0, 0
    while True:
        for child in node["children"]:
            if path.startswith(child["label"], i):
                wide = len(node["children"]) > 5
                node, i = child, i + len(child["label"])
                nodes += 1
                within += i <= first_end
                stride += (wide and len(child["label"]) == 1 and path[:i] not in keys
                           and bool(child["children"]))
                break
        else:
            return nodes, within, stride


def segment_walk(boundaries: set[tuple[str, ...]], path: str) -> int:
    segments = path.split("/")[1:]
    depth = 0
    while depth < len(segments) and tuple(segments[: depth + 1]) in boundaries:
        depth += 1
    probes = depth + 1                         # the root and each segment found
    return probes + (depth < len(segments))    # the failed probe


def main(sizes: list[int]) -> None:
    for n in sizes:
        rules = gen_table(n, seed=1)
        requests = gen_requests(rules, 20_000, seed=1001)
        trees: dict[str, tuple[Node, set[tuple[str, ...]], set[str]]] = {}
        for host, exact, prefix, _ in host_groups(rules):
            keys = set(exact) | {"" if k == "/" else k for k in prefix}
            boundaries = set()
            for k in keys:
                segments = k.split("/")[1:] if k else []
                for d in range(len(segments) + 1):
                    boundaries.add(tuple(segments[:d]))
            trees[host] = (radix(keys), boundaries, keys)
        routed = nodes = within = stride = probes = 0
        for host, path in requests:
            found = trees.get(host)
            if found is None and "." in host:
                found = trees.get("*." + host.split(".", 1)[1])
            if found is None:
                continue
            routed += 1
            a, b, c = byte_walk(found[0], found[2], path.split("?")[0])
            nodes += a
            within += b
            stride += c
            probes += segment_walk(found[1], path.split("?")[0])
        print(f"{n:>7} rules: byte tree {nodes / routed:.2f} nodes per routed lookup "
              f"({within / routed:.2f} within the first segment, {stride / routed:.2f} "
              f"skipped by a two-byte stride at wide nodes); segment tree "
              f"{probes / routed:.2f} probes; {routed} routed of {len(requests)}", flush=True)


if __name__ == "__main__":
    main([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "100,10000,100000").split(",")])
