"""``ProxySettings`` head limits derived from ``large_client_header_buffers`` in every copy
(W3, session 22).

``dataclasses.replace`` (API.md's way to change settings) passes every field back to
``__init__``, so the three limits a ``ProxySettings`` had derived from its own
``large_client_header_buffers`` reached ``__post_init__`` as if given: ``replace(s,
large_client_header_buffers="4 32k")`` kept the old limits (and served them) while saying "4 32k";
a ConfigMap's limits could never be changed that way. Now ProxySettings records the limit objects
it derived (they stay plain ints) and derives them again from a new value.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib.proxy import ProxySettings, parse_config_data
from ingresslib.proxy._settings import parse_header_buffers

from _budget import examples
from _proxy_harness import ProxyPair, status_of


def limits(s: ProxySettings) -> tuple[int, int, int]:
    return s.max_request_line, s.max_header_line, s.max_headers_size


# --- replace() derives the limits of the new value ---------------------------------------------
def test_replace_derives_the_limits_of_the_new_value() -> None:
    s = ProxySettings(large_client_header_buffers="4 16k")
    r = dataclasses.replace(s, large_client_header_buffers="4 32k")
    assert r.large_client_header_buffers == "4 32k"
    assert limits(r) == (32768, 32768, 131072)  # were (16384, 16384, 65536)
    assert r == ProxySettings(large_client_header_buffers="4 32k")


def test_replace_back_to_the_default_value_gives_the_default_limits() -> None:
    s = ProxySettings(large_client_header_buffers="2 1k")
    r = dataclasses.replace(s, large_client_header_buffers="4 8k")
    assert limits(r) == (8192, 8192, 32768)  # were (1024, 1024, 2048)
    assert r == ProxySettings()


def test_replace_of_another_field_keeps_the_derived_limits() -> None:
    s = ProxySettings(large_client_header_buffers="4 16k")
    r = dataclasses.replace(s, hsts=False)
    assert limits(r) == (16384, 16384, 65536)
    # ... and they are still derived: a later change of the value derives them again.
    assert limits(dataclasses.replace(r, large_client_header_buffers="2 1k")) == (1024, 1024, 2048)


def test_configmap_limits_follow_a_later_replace() -> None:
    # The ConfigMap reader gave the limits as ints, i.e. "given": they outlived any change.
    cfg = parse_config_data({"large-client-header-buffers": "2 16k"}).settings
    assert limits(cfg) == (16384, 16384, 32768)
    r = dataclasses.replace(cfg, large_client_header_buffers="4 1k")
    assert limits(r) == (1024, 1024, 4096)  # were (16384, 16384, 32768)
    # A ConfigMap over settings that derived theirs: the ConfigMap's value is served.
    over = parse_config_data({"large-client-header-buffers": "4 32k"},
                             base=ProxySettings(large_client_header_buffers="4 16k")).settings
    assert limits(over) == (32768, 32768, 131072)
    # Another key over ConfigMap settings keeps its limits.
    again = parse_config_data({"hsts": "false"}, base=cfg).settings
    assert limits(again) == (16384, 16384, 32768) and again.hsts is False


def test_configmap_value_over_explicit_limits_keeps_them() -> None:
    # As the ProxyServer keyword over settings= (tests/test_server_override_s22.py) and
    # replace(): limits given explicitly win over a new large_client_header_buffers.
    base = ProxySettings(max_header_line=1000)
    s = parse_config_data({"large-client-header-buffers": "4 32k"}, base=base).settings
    assert s.large_client_header_buffers == "4 32k"
    assert limits(s) == (8192, 1000, 32768)
    assert limits(s) == limits(dataclasses.replace(base, large_client_header_buffers="4 32k"))


# --- explicitly given limits win --------------------------------------------------------------
def test_explicit_limits_survive_a_replace_of_the_value() -> None:
    s = ProxySettings(large_client_header_buffers="4 16k", max_header_line=1000)
    assert limits(s) == (8192, 1000, 32768)
    r = dataclasses.replace(s, large_client_header_buffers="4 32k")
    assert limits(r) == (8192, 1000, 32768)
    assert r == ProxySettings(large_client_header_buffers="4 32k", max_header_line=1000)
    # A limit given in the replace itself wins too.
    r = dataclasses.replace(ProxySettings(large_client_header_buffers="4 16k"),
                            large_client_header_buffers="4 32k", max_request_line=9000)
    assert r.max_request_line == 9000


def test_a_limit_copied_from_other_settings_is_given() -> None:
    other = ProxySettings(large_client_header_buffers="4 16k")
    s = ProxySettings(max_request_line=other.max_request_line)
    assert limits(s) == (16384, 8192, 32768)


# --- the limits are ints like any other -------------------------------------------------------
def test_derived_limits_are_plain_ints() -> None:
    s = ProxySettings(large_client_header_buffers="4 16k")
    plain = ProxySettings(large_client_header_buffers="4 16k", max_request_line=16384,
                          max_header_line=16384, max_headers_size=65536)
    assert s == plain and hash(s) == hash(plain)
    assert "max_request_line=16384, max_header_line=16384, max_headers_size=65536" in repr(s)
    # Exact ints, as a caller would give them (tests/test_review_s19rd.py's guard).
    assert type(s.max_request_line) is int and type(s.max_headers_size) is int
    assert pickle.loads(pickle.dumps(s)) == s
    assert ProxySettings.field_names() >= {"max_request_line", "large_client_header_buffers"}


@pytest.mark.parametrize("how", ["deepcopy", "copy", "asdict"])
def test_copies_keep_the_limits_derived(how: str) -> None:
    s = ProxySettings(large_client_header_buffers="4 16k")
    if how == "deepcopy":
        c = copy.deepcopy(s)
    elif how == "copy":
        c = copy.copy(s)
    else:
        c = ProxySettings(**dataclasses.asdict(s))
    assert c == s
    assert limits(dataclasses.replace(c, large_client_header_buffers="2 1k")) == (1024, 1024,
                                                                                   2048)


_VALUES = st.builds(lambda n, size: f"{n} {size}", st.integers(1, 16),
                    st.sampled_from(["512", "1k", "4k", "8k", "16k", "1m"]))


@settings(max_examples=examples(0.5))
@given(_VALUES, _VALUES)
def test_replace_is_construction_with_the_new_value(first: str, second: str) -> None:
    r = dataclasses.replace(ProxySettings(large_client_header_buffers=first),
                            large_client_header_buffers=second)
    assert r == ProxySettings(large_client_header_buffers=second)
    assert limits(r) == parse_header_buffers(second)


# --- on the wire -----------------------------------------------------------------------------
def test_replaced_settings_are_what_is_served() -> None:
    line = b"X-Big: " + b"a" * 10000 + b"\r\n"
    raw = b"GET / HTTP/1.1\r\nHost: example.test\r\n" + line + b"\r\n"
    big = ProxySettings(large_client_header_buffers="4 16k")
    assert status_of(ProxyPair(settings=big).send(raw)) == 200
    # Back to 8k buffers: the 10000-byte line no longer fits one (it was served, 16k limits).
    small = ProxyPair(settings=dataclasses.replace(big, large_client_header_buffers="4 8k"))
    assert status_of(small.send(raw)) == 431


def test_the_record_of_derived_limits_stays_bounded() -> None:
    # One entry per value met; a process reading many values (reloads) does not grow it.
    from ingresslib.proxy import _settings

    for n in range(1, _settings._DERIVED_MAX + 40):
        ProxySettings(large_client_header_buffers=f"{n} 1k")
    assert len(_settings._DERIVED) <= _settings._DERIVED_MAX
    assert len(_settings._SOURCE) <= 3 * _settings._DERIVED_MAX
    # Still derived again after all that.
    s = ProxySettings(large_client_header_buffers="4 16k")
    assert limits(dataclasses.replace(s, large_client_header_buffers="2 1k")) == (1024, 1024, 2048)
