"""Session 28's features cost a request that uses none of them one attribute test each.

use-gzip, block-user-agents / block-referers, skip-access-log-urls / disable-access-log,
no-tls-redirect-locations, the upstream head's single read deadline, the ConfigMap's
proxy-cookie/redirect defaults and the TLS settings were added this session
(benchmarks/load/README.md "Session 28"). ``tests/test_gzip_s28.py`` and
``tests/test_configmap_keys_s28.py`` already fail if a plain request calls into
``proxy/_gzip.py`` or ``proxy/_block.py``. Here: the access-log checks of a plain request with
records on are two settings reads, no C call either (the target's ``encode`` is made only
when skip-access-log-urls is set), and no class-level default is read through an instance on
a plain request's way through ``Proxy``/``RouteOptionsSource`` or ``IngressASGI`` (session
27's guard covers ``ClientConnection``; such a read is a generic ``PyObject_GetAttr`` in
CPython 3.11, about 190 instructions). Also a plain request through ``ProxyServer`` with
records on calls no code of this session's modules.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath
from types import FrameType
from typing import Any

import pytest
from test_perf_guards_s25 import MANIFESTS, _app, _asgi_call, core_request, python_calls
from test_perf_guards_s27 import _KeepAliveUpstream

import ingresslib._asgi as asgi_module
from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings, RequestRecord
from ingresslib.proxy._actions import RequestDone
from ingresslib.proxy._connection import Proxy
from tests._server_helpers import StubRouter
from tests._upstream_helpers import start_proxy

#: The modules of session 28's per-request features (proxy-request-buffering's
#: ``_request_buffer.py`` too), and its functions in modules a plain request does use.
FEATURE_FILES = {"_gzip.py", "_block.py", "_tls_settings.py", "_request_buffer.py"}
FEATURE_FUNCTIONS = {"blocked_request", "blocked_scope", "skip_logging", "start_gzip",
                     "gzip_send", "compile_map", "in_locations"}


def feature_calls(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(f, n) for f, n in seen if f in FEATURE_FILES or n in FEATURE_FUNCTIONS]


@contextmanager
def calls_with_c() -> Iterator[list[tuple[str, str, str]]]:
    """(kind, calling Python function, callee) of every call meanwhile: kind "py" (callee the
    called Python function) or "c" (a builtin or C method, called from that function)."""
    seen: list[tuple[str, str, str]] = []

    def prof(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            back = frame.f_back
            seen.append(("py", back.f_code.co_name if back is not None else "",
                         PurePath(frame.f_code.co_filename).name + ":" + frame.f_code.co_name))
        elif event == "c_call":
            seen.append(("c", frame.f_code.co_name, getattr(arg, "__name__", repr(arg))))

    sys.setprofile(prof)
    try:
        yield seen
    finally:
        sys.setprofile(None)


def _records(actions: list[Any]) -> list[RequestRecord]:
    return [a.record for a in actions if type(a) is RequestDone]


def _core(settings: ProxySettings) -> Proxy:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), settings=settings, records=True)
    core_request(proxy, 0.0)  # route options and the Router's lazy state built
    return proxy


def test_core_access_log_checks_of_a_plain_request_are_attribute_tests() -> None:
    proxy = _core(ProxySettings())
    with calls_with_c() as seen:
        actions = core_request(proxy, 1.0)
    recs = _records(actions)
    assert len(recs) == 1 and recs[0].access_log is True and recs[0].status == 200
    emit = [(k, callee) for k, caller, callee in seen if caller == "_emit_record"]
    assert ("py", "_block.py:skip_logging") not in emit
    assert ("c", "encode") not in emit  # $request_uri's bytes: only with skip-access-log-urls
    py = [c.split(":", 1) for k, _, c in seen if k == "py"]
    assert feature_calls([(f, n) for f, n in py]) == []


def test_the_access_log_guard_sees_skip_access_log_urls_when_set() -> None:
    # The control: a list that does not match the target still asks it (and logs).
    proxy = _core(ProxySettings(skip_access_log_urls=("/health",)))
    with calls_with_c() as seen:
        actions = core_request(proxy, 1.0)
    assert [r.access_log for r in _records(actions)] == [True]
    emit = [(k, callee) for k, caller, callee in seen if caller == "_emit_record"]
    assert ("py", "_block.py:skip_logging") in emit and ("c", "encode") in emit


def test_disable_access_log_asks_no_url_list() -> None:
    # disable-access-log is tested first: with both set, the list is not consulted.
    proxy = _core(ProxySettings(disable_access_log=True, skip_access_log_urls=("/health",)))
    with calls_with_c() as seen:
        actions = core_request(proxy, 1.0)
    assert [r.access_log for r in _records(actions)] == [False]
    emit = [(k, callee) for k, caller, callee in seen if caller == "_emit_record"]
    assert ("py", "_block.py:skip_logging") not in emit and ("c", "encode") not in emit


def _class_defaults(classes: list[type]) -> list[tuple[type, str, Any]]:
    """The class-level data attributes (not methods, properties or slots) of ``classes`` and
    of their ingresslib bases."""
    out: dict[tuple[type, str], Any] = {}
    for cls in classes:
        for klass in cls.__mro__:
            if not klass.__module__.startswith("ingresslib"):
                continue
            for k, v in vars(klass).items():
                if k.startswith("__") or callable(v) or isinstance(
                        v, (property, staticmethod, classmethod, types.MemberDescriptorType,
                            types.GetSetDescriptorType)):
                    continue
                out[(klass, k)] = v
    return [(klass, k, v) for (klass, k), v in out.items()]


def _count_reads(monkeypatch: pytest.MonkeyPatch, classes: list[type]) -> list[str]:
    read: list[str] = []

    def counting(klass: type, name: str, default: Any) -> property:
        def get(self: Any) -> Any:
            d = getattr(self, "__dict__", {})
            if name in d:
                return d[name]
            read.append(f"{klass.__name__}.{name}")
            return default

        def put(self: Any, value: Any) -> None:
            self.__dict__[name] = value

        def drop(self: Any) -> None:
            del self.__dict__[name]

        return property(get, put, drop)

    found = _class_defaults(classes)
    assert found, "no class-level default to watch"
    for klass, name, value in found:
        monkeypatch.setattr(klass, name, counting(klass, name, value))
    return read


def test_plain_requests_read_no_class_level_default_of_the_proxy_or_the_adapter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Proxy (and RouteOptionsSource, shared with IngressASGI) with records on, and every
    # class of _asgi.py: what a plain request reads is assigned in __init__.
    proxy = _core(ProxySettings())
    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app})
    _asgi_call(asgi, [], [])  # warm
    classes = [Proxy, IngressASGI] + [
        c for c in vars(asgi_module).values()
        if isinstance(c, type) and c.__module__ == asgi_module.__name__]
    read = _count_reads(monkeypatch, classes)
    assert [r.status for r in _records(core_request(proxy, 1.0))] == [200]
    sent: list[Any] = []
    _asgi_call(asgi, sent, [])
    assert sent[0]["status"] == 200
    assert read == []


def test_the_class_default_guard_sees_a_read() -> None:
    # The control: an attribute only the class holds is counted when read.
    class Probe:
        __module__ = "ingresslib.probe"
        flag = None

        def use(self) -> Any:
            return self.flag

    mp = pytest.MonkeyPatch()
    try:
        read = _count_reads(mp, [Probe])
        Probe().use()
    finally:
        mp.undo()
    assert read == ["Probe.flag"]


def test_server_plain_requests_with_records_call_no_session_28_feature_code() -> None:
    # ProxyServer with an on_record consumer (records on: _emit_record's access-log checks)
    # and a pooled upstream connection: two plain requests after a warm one.
    async def main() -> tuple[list[tuple[str, str]], bytes, list[RequestRecord]]:
        up = await _KeepAliveUpstream().start()
        recs: list[RequestRecord] = []
        server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]),
                                         on_record=recs.append)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)

            async def one() -> bytes:
                w.write(b"GET /a HTTP/1.1\r\nHost: plain.test\r\nUser-Agent: t\r\n\r\n")
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
                return head + await asyncio.wait_for(r.readexactly(2), 2)

            got = await one()  # warm
            with python_calls() as seen:
                for _ in range(2):
                    got += await one()
            w.close()
            return seen, got, recs
        finally:
            await server.shutdown(1)
            await up.stop()

    seen, got, recs = asyncio.run(main())
    assert got.count(b"HTTP/1.1 200 ") == 3
    assert [r.access_log for r in recs] == [True, True, True]
    assert any(f == "_connection.py" and n == "_emit_record" for f, n in seen)
    assert feature_calls(seen) == []
