"""Seams between session 18's landings (V18z): one landing's change meeting another's."""

from __future__ import annotations

import logging

import pytest

from ingresslib import RouteTable, parse_manifests
from ingresslib._serve_notes import MAX_NOTES_LOGGED, _log_fresh_notes, _table_notes

_ING = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web-N}
spec:
  ingressClassName: nginx
  rules:
  - host: hN.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def test_every_ingress_left_out_is_said_past_the_notes_cap(
        caplog: pytest.LogCaptureFixture) -> None:
    """U18's "none of the N Ingress(es) is served" line came after one note per Ingress left
    out, and serve logs at most MAX_NOTES_LOGGED fresh notes per table (older): with more
    Ingresses than that, the one line saying every request answers 404 was never logged."""
    n = MAX_NOTES_LOGGED + 20
    res = parse_manifests("---\n".join(_ING.replace("N", str(i)) for i in range(n)))
    table = RouteTable.build(res, ingress_class="other")
    caplog.set_level(logging.INFO, logger="ingresslib.serve")
    _log_fresh_notes(_table_notes((table, ()), res), set())
    logged = [(r.levelno, r.getMessage()) for r in caplog.records
              if r.name == "ingresslib.serve"]
    assert (logging.WARNING, f"none of the {n} Ingress(es) is served (the class filter left out "
            "every one, see above): every request answers 404") in logged
    # The cap still holds for the per-Ingress notes, and the rest are counted.
    per_ingress = [m for _, m in logged if m.endswith("; not served")]
    assert len(per_ingress) == MAX_NOTES_LOGGED
    assert any(m.startswith(f"... and {n - MAX_NOTES_LOGGED} more notes") for _, m in logged)


def test_explain_writes_a_mapped_source_range_as_the_lists_do() -> None:
    """9d23643 (_iptext) writes IPv4-mapped ranges in RFC 5952's mixed form on every Python
    (``parse_source_ranges``, the ConfigMap's lists); explain's JSON ``source_ranges`` still
    wrote the proxy's rules with ``str()``: ``::ffff:a00:0/104`` on Python <= 3.12 for the
    ConfigMap's ``::ffff:10.0.0.0/104`` (an IPv6 rule there, as nginx reads it)."""
    from ingresslib._explain_verdict import describe_access
    from ingresslib.proxy._access import Access, SourceRanges, parse_source_ranges

    written = parse_source_ranges("::ffff:10.0.0.0/104, 2001:db8::/32")
    assert written == ("::ffff:10.0.0.0/104", "2001:db8::/32")
    ranges = SourceRanges()
    ranges.add(written, deny=True)
    shown = describe_access(Access(None, ranges, None))["source_ranges"]["ipv6"]
    assert [r["cidr"] for r in shown] == list(written)


def test_the_lines_said_of_the_whole_table_are_known_as_such() -> None:
    """Guard for the fix above: ``_table_wide`` recognises each whole-table line as
    ``_table_notes`` writes it (the class filter's, Ingresses alone, no Ingress at all), and no
    per-object note."""
    from ingresslib._serve_notes import _table_wide

    ing = parse_manifests(_ING.replace("N", "0"))
    # Ingresses alone (no Service): the INFO line on backends without endpoint.
    alone = _table_notes((RouteTable.build(ing), (), ("backend",)), ing)
    # All left out by the class filter; and files without any Ingress.
    left_out = _table_notes((RouteTable.build(ing, ingress_class="other"), ()), ing)
    empty = parse_manifests("")
    nothing = _table_notes((RouteTable.build(empty), ()), empty, ["dir"])
    wide = [line for notes in (alone, left_out, nothing) for line in notes if _table_wide(line)]
    assert len(wide) == 3, wide
    assert not [line for line in left_out if line.endswith("; not served") and _table_wide(line)]
