"""Session 27, review R6 of S1's ``parse_http_time`` (proxy/_authcache.py): nginx's
``ngx_parse_http_time`` (src/core/ngx_parse_time.c) read line by line.

The table's values follow the C: the three formats (rfc822 ``Tue, 10 Nov 2002 23:50:13``,
rfc850 ``Tuesday, 10-Dec-02 23:50:13``, isoc ``Tue Dec 10 23:50:13 2002``), two-digit years
(``< 70``: 20xx, else 19xx), ``hour > 23 || min > 59 || sec > 59`` refused, Feb 29 only in a
leap year (``year & 3``, ``year % 100 == 0 && year % 400 != 0``), ``day > mday[month]``
refused (day 0 is not: the day before the 1st), and nothing past the seconds (isoc: past the
year) read. Where ``calendar.timegm`` reads the same date it gives the same time.
"""

from __future__ import annotations

import calendar
import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingresslib.proxy._authcache import lifetime, parse_http_time

from _budget import examples

T = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _tg(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


CASES: list[tuple[bytes, int | None]] = [
    # The three formats, RFC 9110's example.
    (b"Sun, 06 Nov 1994 08:49:37 GMT", T),
    (b"Sunday, 06-Nov-94 08:49:37 GMT", T),
    (b"Sun Nov  6 08:49:37 1994", T),
    # isoc: one digit of day without the padding space; the char after the month unchecked.
    (b"Sun Nov 6 08:49:37 1994", T),
    (b"Sun Nov-6 08:49:37 1994", T),
    (b"Sun Nov 06 08:49:37 1994", T),
    # Nothing past the time is read: any zone, none, garbage.
    (b"Sun, 06 Nov 1994 08:49:37", T),
    (b"Sun, 06 Nov 1994 08:49:37 +0200", T),
    (b"Sun, 06 Nov 1994 08:49:37 PST", T),
    (b"Sun, 06 Nov 1994 08:49:37xyz", T),
    (b"Sunday, 06-Nov-94 08:49:37", T),
    (b"Sun Nov  6 08:49:37 1994 GMT", T),
    (b"Sun Nov  6 08:49:37 19945", T),
    # Weekday not checked, nor the month's letters past those nginx looks at.
    (b"Xyz, 06 Nov 1994 08:49:37 GMT", T),
    (b", 06 Nov 1994 08:49:37 GMT", T),
    (b"Sun,    06 Nov 1994 08:49:37 GMT", T),
    (b"Sun, 06 Nxx 1994 08:49:37 GMT", T),
    (b"Sun, 06 Jxx 1994 08:49:37 GMT", _tg(1994, 7, 6, 8, 49, 37)),
    (b"Sun, 06 Jan 1994 08:49:37 GMT", _tg(1994, 1, 6, 8, 49, 37)),
    (b"Sun, 06 Jun 1994 08:49:37 GMT", _tg(1994, 6, 6, 8, 49, 37)),
    (b"Sun, 06 Mar 1994 08:49:37 GMT", _tg(1994, 3, 6, 8, 49, 37)),
    (b"Sun, 06 May 1994 08:49:37 GMT", _tg(1994, 5, 6, 8, 49, 37)),
    (b"Sun, 06 Apr 1994 08:49:37 GMT", _tg(1994, 4, 6, 8, 49, 37)),
    (b"Sun, 06 Aug 1994 08:49:37 GMT", _tg(1994, 8, 6, 8, 49, 37)),
    (b"Sun, 06 Dec 1994 08:49:37 GMT", _tg(1994, 12, 6, 8, 49, 37)),
    (b"Sun, 06 nov 1994 08:49:37 GMT", None),  # lower case: no case of the switch
    # Two-digit years.
    (b"Thursday, 01-Jan-70 00:00:00 GMT", 0),
    (b"Wednesday, 31-Dec-69 23:59:59 GMT", _tg(2069, 12, 31, 23, 59, 59)),
    (b"Saturday, 01-Jan-00 00:00:00 GMT", _tg(2000, 1, 1)),
    (b"Friday, 31-Dec-99 23:59:59 GMT", _tg(1999, 12, 31, 23, 59, 59)),
    # Ranges.
    (b"Sun, 06 Nov 1994 23:59:59 GMT", _tg(1994, 11, 6, 23, 59, 59)),
    (b"Sun, 06 Nov 1994 24:00:00 GMT", None),
    (b"Sun, 06 Nov 1994 08:60:00 GMT", None),
    (b"Sun, 06 Nov 1994 08:49:60 GMT", None),  # no leap second
    (b"Sun, 31 Dec 1994 00:00:00 GMT", _tg(1994, 12, 31)),
    (b"Sun, 32 Dec 1994 00:00:00 GMT", None),
    (b"Sun, 31 Apr 1994 00:00:00 GMT", None),
    (b"Sun, 30 Apr 1994 00:00:00 GMT", _tg(1994, 4, 30)),
    (b"Sun, 31 Jul 1994 00:00:00 GMT", _tg(1994, 7, 31)),
    (b"Sun, 31 Aug 1994 00:00:00 GMT", _tg(1994, 8, 31)),
    (b"Sun, 31 Sep 1994 00:00:00 GMT", None),
    (b"Sun, 00 Nov 1994 00:00:00 GMT", _tg(1994, 10, 31)),  # day 0: not > mday
    (b"Sun, 00 Jan 1995 00:00:00 GMT", _tg(1994, 12, 31)),
    (b"Sun, 00 Mar 2024 00:00:00 GMT", _tg(2024, 2, 29)),
    # Leap years, Feb 29.
    (b"Tue, 29 Feb 2000 00:00:00 GMT", _tg(2000, 2, 29)),
    (b"Tue, 29 Feb 2024 12:00:00 GMT", _tg(2024, 2, 29, 12)),
    (b"Tue, 29 Feb 2023 00:00:00 GMT", None),
    (b"Tue, 29 Feb 1900 00:00:00 GMT", None),
    (b"Tue, 29 Feb 2100 00:00:00 GMT", None),
    (b"Tue, 28 Feb 2100 00:00:00 GMT", _tg(2100, 2, 28)),
    (b"Tue, 30 Feb 2024 00:00:00 GMT", None),
    (b"Tue Feb 29 00:00:00 2400", _tg(2400, 2, 29)),
    (b"Tue Feb 29 00:00:00 2300", None),
    (b"Tuesday, 29-Feb-00 00:00:00 GMT", _tg(2000, 2, 29)),
    (b"Tuesday, 29-Feb-01 00:00:00 GMT", None),
    (b"Fri, 31 Dec 9999 23:59:59 GMT", _tg(9999, 12, 31, 23, 59, 59)),
    (b"Mon, 01 Mar 0000 00:00:00 GMT", -62162035200),
    # Lengths: 18 bytes from the day (rfc822: from the month), isoc 14 from the hour's space.
    (b"Sunday, 06-Nov-94 08:49:3", None),
    (b"Sun, 06 Nov 1994 08:49:3", None),
    (b"Sun Nov  6 08:49:37 199", None),
    (b"Sun, 06 Nov 94 08:49:37 GMT", None),  # rfc822 wants four digits
    (b"Sun, 6 Nov 1994 08:49:37 GMT", None),
    (b"Sun, 06/Nov/1994 08:49:37 GMT", None),
    (b"Sunday, 06-Nov-94T08:49:37 GMT", None),
    (b"Sun, 06 Nov 1994 08.49.37 GMT", None),
    (b"Sun Nov  6 08:49:37  1994", None),
    (b"Sun Nov  x 08:49:37 1994", None),
    (b"1994-11-06T08:49:37Z", None),  # no "," nor " ": fmt no, p past the end
    (b"784111777", None),
    (b"", None),
    (b" ", None),
    (b",", None),
    (b"Sun, \x00\x00 Nov 1994 08:49:37 GMT", None),
]


def test_the_c_table() -> None:
    wrong = [(v, parse_http_time(v), want) for v, want in CASES if parse_http_time(v) != want]
    assert wrong == []


@settings(max_examples=examples(0.5), deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_give_none_or_an_int(value: bytes) -> None:
    got = parse_http_time(value)
    assert got is None or type(got) is int


@settings(max_examples=examples(0.5), deadline=None)
@given(st.lists(st.sampled_from(b"0123456789 ,-:JFMASONDaebrpun\x00GMT"), max_size=40))
def test_date_like_bytes_give_none_or_an_int(chars: list[int]) -> None:
    got = parse_http_time(bytes(chars))
    assert got is None or type(got) is int


@settings(max_examples=examples(0.5), deadline=None)
@given(st.datetimes(), st.sampled_from(("rfc822", "rfc850", "isoc")),
       st.binary(max_size=8))
@example(datetime.datetime(1932, 2, 29), "rfc850", b"")   # (session 28: failed in CI once)
def test_every_valid_date_is_timegm(d: object, fmt: str, tail: bytes) -> None:
    assert isinstance(d, datetime.datetime)
    if fmt == "rfc850" and not (1970 <= d.year <= 2069):
        # The same two-digit year in 1970-2069 (RFC 850's window): a year of the same century
        # remainder keeps Feb 29 valid (1932-02-29 -> 2032, not 2002, no leap year).
        yy = d.year % 100
        d = d.replace(year=(1900 if yy >= 70 else 2000) + yy)
    mon = MONTHS[d.month - 1]
    hms = f"{d.hour:02}:{d.minute:02}:{d.second:02}"
    if fmt == "rfc822":
        text = f"Day, {d.day:02} {mon} {d.year:04} {hms}".encode() + tail
    elif fmt == "rfc850":
        text = f"Weekday, {d.day:02}-{mon}-{d.year % 100:02} {hms}".encode() + tail
    else:
        text = f"Day {mon} {d.day:2} {hms} {d.year:04}".encode() + tail
    assert parse_http_time(text) == _tg(d.year, d.month, d.day, d.hour, d.minute, d.second)


def test_long_values_are_read_in_one_pass() -> None:
    # The scan for "," or " " is the one loop over the input; the rest reads a fixed window.
    assert parse_http_time(b"x" * 200_000) is None
    assert parse_http_time(b"x" * 200_000 + b", 06 Nov 1994 08:49:37 GMT") == T
    assert parse_http_time(b"Sun, 06 Nov 1994 08:49:37 " + b"G" * 200_000) == T
    assert parse_http_time(b"Sun," + b" " * 200_000 + b"06 Nov 1994 08:49:37") == T


def test_lifetime_reads_the_first_expires_as_nginx() -> None:
    wall = float(T - 100)
    assert lifetime((), 200, [(b"", b"expires", b"Sun, 06 Nov 1994 08:49:37 +0900")],
                    wall) == 100.0
    # A date nginx cannot read, or a past one: not cached; the second Expires is not read.
    assert lifetime((), 200, [(b"", b"expires", b"Sun, 06 Nov 1994 08:49:60 GMT"),
                              (b"", b"expires", b"Sun, 06 Nov 1994 08:49:37 GMT")],
                    wall) == 0.0
    # Year 0000, January (nginx's unsigned year wraps around; its time is in the past too).
    assert lifetime((), 200, [(b"", b"expires", b"Sat, 01 Jan 0000 00:00:00 GMT")],
                    wall) == 0.0
