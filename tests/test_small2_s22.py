"""Session 22, X10: ``RouteOptions.backend_tls`` follows ``backend_protocol`` in every copy; a
lone surrogate in a metrics label value no longer fails every scrape; the router's h11 fast
path is taken only when h11's header internals read as expected."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, overload

import h11._headers
import pytest
from hypothesis import given, settings, strategies as st
from prometheus_client import Gauge

import ingresslib._balance_request as balance_request
from ingresslib._metrics import Metrics
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options

from _budget import examples
from _records import rec

# -- 1. RouteOptions.backend_tls --------------------------------------------------------------


def _opts(protocol: str | None) -> Any:
    ann = {} if protocol is None else {PREFIX + "backend-protocol": protocol}
    return parse_route_options(ann, "/", ProxySettings())


@pytest.mark.parametrize("start", [None, "HTTP", "HTTPS", "AUTO_HTTP"])
@pytest.mark.parametrize("new", ["HTTP", "HTTPS", "AUTO_HTTP"])
def test_replace_backend_protocol_updates_backend_tls(start: str | None, new: str) -> None:
    o = dataclasses.replace(_opts(start), backend_protocol=new)
    assert o.backend_protocol == new
    assert o.backend_tls is (new == "HTTPS")


def test_backend_tls_is_derived_not_a_constructor_argument() -> None:
    o = _opts("HTTPS")
    assert o.backend_tls is True
    with pytest.raises((TypeError, ValueError)):
        dataclasses.replace(o, backend_tls=False)
    # Everything else survives a copy, the derived ``redirects`` too.
    c = dataclasses.replace(o, app_root="/app")
    assert (c.backend_tls, c.redirects, c.app_root) == (True, True, "/app")


# -- 2. metrics: lone surrogates in label values ----------------------------------------------


def _requests_lines(body: bytes) -> list[str]:
    text = body.decode("utf-8")  # strict: the exposition is valid UTF-8
    return [ln for ln in text.splitlines()
            if ln.startswith("nginx_ingress_controller_requests")]


@pytest.mark.parametrize("go_names", [True, False])
def test_surrogate_label_value_does_not_break_the_scrape(go_names: bool) -> None:
    m = Metrics(go_names=go_names)
    m.observe(rec(host="a\udcffb.test", rule_path="/\udcff", ingress="shop/w\ud800"))
    body = m.render()
    lines = _requests_lines(body)
    assert len(lines) == 1
    assert 'host="a\ufffdb.test"' in lines[0] and 'path="/\ufffd"' in lines[0]
    assert 'ingress="w\ufffd"' in lines[0]
    # ... and every later scrape, with good records next to it.
    m.observe(rec())
    lines = _requests_lines(m.render())
    assert len(lines) == 2
    assert any('host="foo.test"' in ln for ln in lines)


def test_surrogates_count_in_one_series_as_ingress_nginx() -> None:
    # ingress-nginx's collector reads invalid UTF-8 as U+FFFD (json.Unmarshal): two such
    # hosts are one series, not two lines with the same labels.
    m = Metrics()
    m.observe(rec(host="x\udcfe.test"))
    m.observe(rec(host="x\udcff.test"))
    lines = _requests_lines(m.render())
    assert len(lines) == 1 and lines[0].endswith(" 2.0")


@pytest.mark.parametrize("go_names", [True, False])
def test_surrogate_in_an_application_collector(go_names: bool) -> None:
    m = Metrics(go_names=go_names)
    g = Gauge("app_thing", "help with \udcff", ["who"], registry=m.registry)
    g.labels("b\udcffd").set(3)
    text = m.render().decode("utf-8")
    assert 'app_thing{who="b\ufffdd"} 3.0' in text
    assert "help with \ufffd" in text


_label_text = st.text(st.characters(min_codepoint=0, max_codepoint=0xFFFF), max_size=8)


@settings(max_examples=examples(0.3), deadline=None)
@given(host=_label_text, path=_label_text)
def test_any_label_text_renders(host: str, path: str) -> None:
    m = Metrics()
    m.observe(rec(host=host, rule_path="/" + path))
    body = m.render()
    body.decode("utf-8")
    assert len(_requests_lines(body)) == 1


# -- 3. the router's h11.Headers fast path ----------------------------------------------------


def test_real_h11_headers_take_the_fast_path() -> None:
    assert balance_request.H11_HEADERS is h11._headers.Headers
    hs = h11.Request(method="GET", target="/", headers=[("Host", "a"), ("X-Key", "v")]).headers
    assert balance_request.header_value(hs, "x-key", b"x-key") == "v"


class _ReorderedHeaders(Sequence[tuple[bytes, bytes]]):
    """An h11 whose ``Headers`` keeps ``(lower-cased, raw, value)`` triples: the public items
    are unchanged, the internal layout is not."""

    def __init__(self, items: list[tuple[bytes, bytes, bytes]]) -> None:
        self._full_items = [(lower, raw, v) for raw, lower, v in items]

    @overload
    def __getitem__(self, i: int) -> tuple[bytes, bytes]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[bytes, bytes]]: ...

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [(lower, v) for lower, _, v in self._full_items[i]]
        lower, _, v = self._full_items[i]
        return (lower, v)

    def __len__(self) -> int:
        return len(self._full_items)

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return ((lower, v) for lower, _, v in self._full_items)


def _fresh_copy(monkeypatch: pytest.MonkeyPatch, headers_type: type) -> ModuleType:
    """``ingresslib._balance_request`` imported anew with ``h11._headers.Headers`` replaced."""
    monkeypatch.setattr(h11._headers, "Headers", headers_type)
    path = Path(balance_request.__file__)
    name = "ingresslib._balance_request_x10_copy"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[name]
    return mod


def test_changed_h11_header_layout_is_read_through_public_items(
        monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _fresh_copy(monkeypatch, _ReorderedHeaders)
    hs = _ReorderedHeaders([(b"Host", b"host", b"a"), (b"X-Canary", b"x-canary", b"always"),
                            (b"X-Canary", b"x-canary", b"never")])
    assert mod.header_value(hs, "x-canary", b"x-canary") == "always"
    assert mod.header_value(hs, "x-canary", b"x-canary", ", ") == "always, never"
    ctx = mod.RequestContext("GET", "a", "/", headers=hs)
    assert ctx.header("X-Canary") == "always, never"
    assert mod.H11_HEADERS is None


def test_renamed_h11_header_attribute_is_no_attribute_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Renamed(_ReorderedHeaders):
        def __init__(self, items: list[tuple[bytes, bytes, bytes]]) -> None:
            self._items3 = [(lower, raw, v) for raw, lower, v in items]

        @property
        def _full_items(self) -> Any:  # type: ignore[override]
            raise AttributeError("_full_items")

        def __len__(self) -> int:
            return len(self._items3)

        def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
            return ((lower, v) for lower, _, v in self._items3)

    mod = _fresh_copy(monkeypatch, Renamed)
    hs = Renamed([(b"X-A", b"x-a", b"1")])
    assert mod.header_value(hs, "x-a", b"x-a") == "1"
    assert mod.H11_HEADERS is None
