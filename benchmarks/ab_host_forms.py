"""Another tree's matcher against this one, per spelling of the request's Host (session 34).

    python benchmarks/ab_host_forms.py OTHER_TREE c|py 10000,100000 [rounds] [forms]

OTHER_TREE is another checkout with its extension built in place (e.g. ``git archive HEAD``
into /tmp, then ``cython -3`` and ``setup.py build_ext --inplace`` there); ``c`` compares the
compiled matchers (its ``_match*.so`` against the in-tree build), ``py`` the pure twins. Each
host of bench_match.py's Zipf stream is sent as generated (``as-is``: the compiled fast path),
with a port (``:8080``) or with a capital first letter (``Mixed``): the compiled slow path,
the pure twin's normalising one. Rounds alternate as in ab_matcher.py (same fresh chunks);
prints the median ns per lookup of each and the median per-round ratio new/old, over seeds 1-3.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import statistics
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _routers import host_groups  # noqa: E402
from ab_matcher import rotate  # noqa: E402
from bench_match import table  # noqa: E402

from ingresslib import _match, _match_py  # noqa: E402

FORMS = {
    "as-is": lambda h: h,
    ":8080": lambda h: h + b":8080",
    "Mixed": lambda h: h[:1].upper() + h[1:],
}


def load(name: str, path: str) -> Any:
    """The module at ``path`` as ``name`` (its relative imports: this tree's ingresslib)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(tree: str, which: str, sizes: list[int], rounds: int, forms: list[str]) -> None:
    old: Any
    new: Any
    if which == "c":
        (so,) = glob.glob(os.path.join(tree, "ingresslib", "_match.*.so"))
        old, new = load("ingresslib._match", so), _match
    else:
        old, new = load("ingresslib._match_py_other", os.path.join(tree, "ingresslib", "_match_py.py")), _match_py
    for n in sizes:
        for form in forms:
            runs: list[list[float]] = [[], []]
            for seed in (1, 2, 3):
                rules, stream = table(n, seed)
                groups = host_groups(rules)
                spelled = [(FORMS[form](h), p) for h, p in stream]
                a, b = old.Matcher(groups), new.Matcher(groups)
                for h, p in spelled[:2000]:  # the same answers, before timing them
                    assert a.lookup(h.decode(), p.decode()) is b.lookup(h.decode(), p.decode())
                rotate([a.lookup, b.lookup], spelled, rounds, runs)
            ratio = statistics.median(y / x for x, y in zip(*runs))
            print(f"{which:2} {n:>7} rules {form:6} old {statistics.median(runs[0]):7.1f} ns"
                  f"  new {statistics.median(runs[1]):7.1f} ns  new/old {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")],
         int(sys.argv[4]) if len(sys.argv) > 4 else 60,
         sys.argv[5].split(",") if len(sys.argv) > 5 else list(FORMS))
