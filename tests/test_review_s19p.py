"""Review of the per-route counters (Q19p): the compiled ``_pick`` and its pure twin
``_pick_py`` take the same inputs (both twins, through the ``counters`` fixture)."""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import Router

from _counters import counters  # noqa: F401  (autouse: every test runs on both twins)
from _router_helpers import P, canary, ingress, resources, simple_backend


class _Items(tuple):  # type: ignore[type-arg]
    """A tuple subclass (what a caller's own sequence type may be)."""


def _h11_headers(items: Any) -> Any:
    # An h11.Headers whose _full_items is what a caller handed h11's constructor.
    return h11._headers.Headers(items)  # type: ignore[attr-defined]


def test_router_reads_a_canary_header_from_h11_headers_holding_a_tuple(counters: Any) -> None:
    # The first request of a canary-by-header route goes through the Router's Python path,
    # which reads headers._full_items with http_header; later ones through CanaryPick. An
    # h11.Headers holding a tuple (h11's constructor stores what it is given) was read by
    # the pure twin and by CanaryPick, but the compiled http_header refused it (TypeError:
    # expected list) on the very first request only.
    r = Router(resources(
        ingress("main", [("a.test", "/", "Prefix", "main", 80)]),
        canary("can", "a.test", "/", "can", 80, {P + "canary-by-header": "X-Canary"}),
        *simple_backend("main", ["10.0.0.1"]), *simple_backend("can", ["10.0.0.2"])))
    yes = ((b"Host", b"host", b"a.test"), (b"X-Canary", b"x-canary", b"always"))
    no = ((b"Host", b"host", b"a.test"), (b"X-Canary", b"x-canary", b"never"))
    for _ in range(3):  # first request (Python path), then the compiled pick
        d = r.route("GET", "a.test", "/", _h11_headers(yes))
        assert d is not None and d.service == "can"
        d = r.route("GET", "a.test", "/", _h11_headers(no))
        assert d is not None and d.service == "main"


@given(items=st.lists(st.tuples(st.sampled_from([b"A", b"B"]), st.sampled_from([b"a", b"b"]),
                                st.binary(max_size=3)), max_size=6),
       form=st.sampled_from([tuple, _Items, iter, list]))
def test_http_header_reads_any_sequence_of_triples(counters: Any, items: list[Any],
                                                    form: Any) -> None:
    # Same answer for the triples whatever sequence holds them (the pure twin's ``for``).
    values = [v for _, k, v in items if k == b"a"]
    want = None if not values else values[0] if len(values) == 1 else b", ".join(values)
    assert counters.http_header(form(items), b"a") == want


@given(items=st.lists(st.integers(), min_size=1, max_size=7),
       start=st.one_of(st.integers(-2**80, -2**62), st.integers(2**62, 2**80)),
       sub=st.booleans())
def test_rotation_takes_any_int_start_and_any_tuple(counters: Any, items: list[int], start: int,
                                                    sub: bool) -> None:
    # The documented start is items[start % len(items)] for any int (the compiled twin raised
    # OverflowError past a C ssize_t), and a tuple subclass passes the isinstance check the
    # compiled twin made and then refused it (TypeError: Expected tuple, got _Items).
    seq = _Items(items) if sub else tuple(items)
    r = counters.Rotation(seq, start)
    assert [next(r) for _ in range(2 * len(items))] == [
        items[(start + k) % len(items)] for k in range(2 * len(items))]


@pytest.mark.parametrize("weight", [True, 1])
def test_interleave_reports_its_weight_as_an_int(counters: Any, weight: int) -> None:
    s = counters.Interleave(weight, 3)
    assert type(s.weight) is int and type(s.total) is int and (s.weight, s.total) == (1, 3)


@pytest.mark.parametrize("args", [(1.5, 3), (1, 3.0), (1.0, 3)])
def test_interleave_refuses_a_non_integer_weight_or_total(counters: Any, args: Any) -> None:
    # The compiled twin truncated 1.5 to 1 (the C conversion) while the pure one counted in
    # floats: two different splits for one input. Both refuse it now, as Rotation's start.
    with pytest.raises(TypeError):
        counters.Interleave(*args)
