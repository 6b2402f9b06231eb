"""_goparse: annotation values read as Go's strconv.ParseBool and strconv.Atoi read them."""

from __future__ import annotations

import pytest

from ingresslib._goparse import parse_bool, parse_int


@pytest.mark.parametrize(("raw", "value"), [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False),
    ("False", False), ("tRUE", None), (" true", None), ("yes", None), ("", None)])
def test_parse_bool_is_strconv_parse_bool(raw: str, value: bool | None) -> None:
    assert parse_bool(raw) is value


@pytest.mark.parametrize(("raw", "value"), [
    ("0", 0), ("42", 42), ("+7", 7), ("-7", -7), ("007", 7),
    ("9223372036854775807", 2**63 - 1), ("-9223372036854775808", -2**63),
    # strconv.Atoi on a 64-bit Go: a value outside int64 is ErrRange, an error like any other
    # (ingress-nginx then uses the default). Before: read as a Python int of any size.
    ("9223372036854775808", None), ("-9223372036854775809", None),
    ("99999999999999999999999", None),
    ("", None), (" 5", None), ("5 ", None), ("1_0", None), ("\u0665", None), ("30s", None),
    ("0x10", None), ("+", None), ("1.5", None)])
def test_parse_int_is_strconv_atoi(raw: str, value: int | None) -> None:
    assert parse_int(raw) == value
