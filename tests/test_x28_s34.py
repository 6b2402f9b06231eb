"""Session 34, x28: a second engineer's review of x25 (the undefined-host bound, router checks,
Go floats) and x26 (a rewrite-target URL's captures decoded as latin-1).

Defects found, each test below failed before its fix:

* ``serve --time-buckets=1_000`` (and the other bucket options) was a usage error, x25 reading
  underscores as Go's ``strconv.ParseFloat`` refusing them: it takes them between digits
  (its own table, atof_test.go: ``"1_23.50_0_0e+1_2"`` is 1.235e+14), so pflag's
  Float64Slice, and the controller, start with 1000.
* ``--time-buckets=0x1p-2`` (a Go hexadecimal float, 0.25 for ParseFloat) was a usage error:
  Python's ``float`` reads no hex; ``0x1`` (no ``p`` exponent) stays refused, as Go's.
* ``--time-buckets=１`` (a full-width digit, or ``٣``) was taken (Python's ``float`` reads any
  Unicode digit) where ParseFloat, ASCII only, refuses it.
* ``Metrics(per_undefined_host=True)`` warned again after every ``set_hosts`` (each reload)
  once the bound was full: the recount cleared "warned" although no name had been freed.
"""

from __future__ import annotations

import logging

import pytest

from ingresslib._cli import build_parser
from ingresslib._metrics import Metrics

from _records import rec


def _buckets(value: str) -> list[float]:
    a = build_parser().parse_args(["serve", "-f", "m.yaml", f"--time-buckets={value}"])
    return list(a.time_buckets)


# --- the bucket options read each number as Go's strconv.ParseFloat -------------------------------


@pytest.mark.parametrize("value,expected", [
    # Underscores between digits (Go's underscoreOK), after a hex prefix too.
    ("1_000", 1000.0), ("1_23.50_0_0e+1_2", 1.235e14), ("0_1", 1.0),
    ("0x_1_2.3_4_5p+1_2", 74565.0),
    # Hexadecimal floats: a "p" exponent is part of their syntax.
    ("0x1p-2", 0.25), ("0X1.8P1", 3.0), ("-0x1ep-1", -15.0), ("0x.1p+2", 0.25),
    ("0x1fFe2.p0", 131042.0),
    # The forms Python's float reads the same way.
    (".5", 0.5), ("5.", 5.0), ("+1", 1.0), ("1E3", 1000.0), ("1e-400", 0.0),
])
def test_bucket_numbers_parsefloat_takes_are_taken(value: str, expected: float) -> None:
    # pflag's Float64Slice: strconv.ParseFloat(s, 64) per part (atof_test.go's table).
    assert _buckets(f"1,{value}") == [1.0, expected]


@pytest.mark.parametrize("value", [
    "１", "٣", "1٣",  # Unicode digits: ParseFloat reads '0'..'9' only
    "0x1", "0x1.8", "1p2", "0x", "0x.p1",  # a hex float needs digits and a "p" exponent
    "1__0", "_1", "1_", "1_.5", "1._5", "1e_5", "-_1", "0x1_p1",  # underscores not between digits
    "0b1", "0o7", "1e", ".", "infinit",
])
def test_bucket_numbers_parsefloat_refuses_are_usage_errors(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        _buckets(f"1,{value}")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--time-buckets" in err and repr(value) in err, err


@pytest.mark.parametrize("value", ["0x1p1024", "-0x1p2000", "0x1.fffffffffffff8p1023"])
def test_hex_bucket_numbers_out_of_range_are_usage_errors(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # ParseFloat: ±Inf with ErrRange (atof_test.go), which pflag returns as an error.
    with pytest.raises(SystemExit) as e:
        _buckets(value)
    assert e.value.code == 2
    assert "out of range" in capsys.readouterr().err


# --- the undefined-host bound warns once while it stays full ------------------------------------


def test_undefined_host_bound_warns_once_across_reloads(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics(per_undefined_host=True, max_hosts=2)
    m.set_hosts(["foo.test"])
    caplog.set_level(logging.WARNING, logger="ingresslib")
    for n in range(3):
        m.observe(rec(host=f"x{n}.test", ingress=None))
    for n in range(3, 6):
        m.set_hosts(["foo.test"])  # a reload: nothing freed, the bound is still full
        m.observe(rec(host=f"x{n}.test", ingress=None))
    warnings = [r for r in caplog.records if "distinct Host values" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = m.render().decode()
    # x2..x5 share host="": one series, its four requests added.
    assert 'host=""' in text
    shared = [ln for ln in text.splitlines()
              if ln.startswith("nginx_ingress_controller_requests{") and 'host=""' in ln]
    assert len(shared) == 1 and float(shared[0].rsplit(" ", 1)[1]) == 4, shared


def test_undefined_host_bound_warns_again_once_a_name_was_freed(
        caplog: pytest.LogCaptureFixture) -> None:
    # A host the reload now serves no longer counts: the bound has room, and filling it again
    # is news worth a warning.
    m = Metrics(per_undefined_host=True, max_hosts=2)
    m.set_hosts(["foo.test"])
    caplog.set_level(logging.WARNING, logger="ingresslib")
    for n in range(3):
        m.observe(rec(host=f"x{n}.test", ingress=None))
    m.set_hosts(["foo.test", "x0.test"])
    m.observe(rec(host="y1.test", ingress=None))  # takes the freed place
    m.observe(rec(host="y2.test", ingress=None))  # past the bound again
    warnings = [r for r in caplog.records if "distinct Host values" in r.getMessage()]
    assert len(warnings) == 2
    assert 'host="y1.test"' in m.render().decode()


@pytest.mark.parametrize("value", ["NaN", "nan"])
def test_a_nan_bucket_bound_is_a_usage_error(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # README's row: ParseFloat reads NaN and client_golang keeps it (a bucket le="NaN"); here
    # it bounds nothing, and serve refuses it.
    with pytest.raises(SystemExit) as e:
        _buckets(f"1,{value}")
    assert e.value.code == 2
    assert "a bucket bound must be a number" in capsys.readouterr().err
