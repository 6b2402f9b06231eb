"""Session 29's features cost a request that uses none of them one attribute test each.

brotli, the request-buffering budget, server-tokens / allow-backend-server-header,
log-format-upstream and the TLS reload off the loop were added this session
(benchmarks/load/README.md "Session 29"). The feature files' own guards already fail if a plain
request calls into their modules (``test_brotli_s29.py``, ``test_server_keys_s29.py``,
``test_request_buffering_budget_s29.py``, ``test_log_format_s29.py``,
``test_log_format_review_s29.py``). Here what they do not cover:

* a new client connection reads the ``Proxy.settings`` property once (``_compress`` is derived
  from the connection's own settings, not from two more property calls: a Python call each);
* the access log's default line, set up as ``serve`` sets it (``default_server`` and
  ``configure``), reads no class-level default of ``_accesslog.py`` and builds no
  log-format-upstream message;
* a plain IngressASGI answer reads no class-level default of ``_asgi_reply.py``'s reply
  classes (``_Reply._drop`` is read only when the app's head holds a hidden header), and
  ``_Reply.send`` makes no closure cell (a comprehension naming one of its locals made it one,
  created on every call);
* no method call of an instance attribute (``self.clock()``, ``self._reply_type(...)``,
  ``self.request_id()``) on the per-request paths: CPython 3.11 never specialises such a
  ``LOAD_METHOD`` (a generic lookup, the type's and the instance's, on every call); the
  attribute is read into a local, then called.
"""

from __future__ import annotations

import dis
import io
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from test_perf_guards_s25 import MANIFESTS, _asgi_call, core_request
from test_perf_guards_s28 import _count_reads

import ingresslib._accesslog as accesslog_module
import ingresslib._asgi_reply as reply_module
from ingresslib._accesslog import AccessLog, AccessLogFormatter, access_fields, format_line
from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings, RequestRecord
from ingresslib.proxy._actions import RequestDone
from ingresslib.proxy._connection import ClientConnection, Proxy


@contextmanager
def qualified_calls() -> Iterator[list[tuple[str, str]]]:
    """(file name, qualified name) of every Python function called meanwhile."""
    seen: list[tuple[str, str]] = []

    def prof(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            seen.append((code.co_filename.rsplit("/", 1)[-1], code.co_qualname))

    sys.setprofile(prof)
    try:
        yield seen
    finally:
        sys.setprofile(None)


# --- a new connection ---------------------------------------------------------------------------


def test_a_new_connection_reads_the_proxy_settings_property_once() -> None:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    proxy.connection(("127.0.0.1", 5555), now=0.0)  # warm
    with qualified_calls() as seen:
        conn = proxy.connection(("127.0.0.1", 5555), now=1.0)
    assert seen and conn.settings is proxy.settings
    # ClientConnection.__init__'s "self.settings = proxy.settings"; nothing else asks.
    assert [q for f, q in seen if f == "_connection.py" and q == "Proxy.settings"] == [
        "Proxy.settings"]


@pytest.mark.parametrize(("settings", "compress"), [
    (ProxySettings(), False),
    (ProxySettings(use_gzip=True), True),
    (ProxySettings(enable_brotli=True), True),
])
def test_a_connection_compresses_by_its_own_settings(settings: ProxySettings,
                                                     compress: bool) -> None:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    before = proxy.connection(("127.0.0.1", 5555), now=0.0)
    proxy.settings = settings
    after = proxy.connection(("127.0.0.1", 5555), now=0.0)
    # A connection opened before the change keeps the settings it was opened with.
    assert (before._compress, after._compress) == (False, compress)
    assert after.settings is settings


# --- the access log's default line --------------------------------------------------------------


def _plain_record() -> RequestRecord:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=True)
    recs = [a.record for a in core_request(proxy, 1.0) if type(a) is RequestDone]
    assert len(recs) == 1 and recs[0].status == 200 and recs[0].service is not None
    return recs[0]


def _serve_log() -> tuple[AccessLog, io.StringIO]:
    """An AccessLog as ``serve`` makes it (default_server, configure), writing text lines
    through ``_accesslog``'s own handler to a StringIO (a logger of its own: nothing global)."""
    out = io.StringIO()
    logger = logging.getLogger("ingresslib.test_perf_guards_s29")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = accesslog_module._AccessHandler(out)
    handler.setFormatter(AccessLogFormatter("text"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def default_server(host: str) -> bool:
        return True

    log = AccessLog(logger, clock=lambda: 1000.0, default_server=default_server)
    log.configure(ProxySettings())
    return log, out


def test_the_default_access_line_reads_no_class_level_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _plain_record()
    log, out = _serve_log()
    log(rec)  # warm
    classes = [c for c in vars(accesslog_module).values()
               if isinstance(c, type) and c.__module__ == accesslog_module.__name__]
    read = _count_reads(monkeypatch, classes)
    with qualified_calls() as seen:
        log(rec)
    assert read == []
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1] == format_line(access_fields(rec, 1000.0))
    # The default format's fast path: nothing of log-format-upstream's message is built.
    assert seen and [q for f, q in seen if q.startswith("_Custom.")] == []
    assert [f for f, _ in seen if f == "_logformat.py"] == []


def test_the_access_line_guard_sees_a_custom_format() -> None:
    # The control: with log-format-upstream set, the line is a _Custom message.
    rec = _plain_record()
    log, out = _serve_log()
    log.configure(ProxySettings(log_format_upstream="$status $request_method"))
    with qualified_calls() as seen:
        log(rec)
    assert out.getvalue() == "200 GET\n"
    assert "_Custom.__init__" in [q for _, q in seen]


# --- IngressASGI's reply ------------------------------------------------------------------------


def _reply_classes() -> list[type]:
    return [c for c in vars(reply_module).values()
            if isinstance(c, type) and c.__module__ == reply_module.__name__]


async def _server_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"server", b"app/1")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _plain_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _reads(monkeypatch: pytest.MonkeyPatch, app: Any) -> tuple[list[str], list[Any]]:
    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": app})
    _asgi_call(asgi, [], [])  # warm
    read = _count_reads(monkeypatch, _reply_classes())
    sent: list[Any] = []
    _asgi_call(asgi, sent, [])
    return read, sent


def test_a_plain_asgi_answer_reads_no_class_level_default_of_the_reply(
        monkeypatch: pytest.MonkeyPatch) -> None:
    read, sent = _reads(monkeypatch, _plain_app)
    assert sent[0]["status"] == 200 and sent[0]["headers"] == [(b"content-type", b"text/plain")]
    assert read == []


def test_the_reply_guard_sees_a_hidden_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: an app's Server header (hidden, server-tokens off) reads _Reply._drop.
    read, sent = _reads(monkeypatch, _server_app)
    assert sent[0]["headers"] == [(b"content-type", b"text/plain")]
    assert read == ["_Reply._drop"]


def test_reply_send_makes_no_closure_cell() -> None:
    for cls in _reply_classes():
        send = getattr(cls, "send", None)
        if send is not None:
            assert send.__code__.co_cellvars == (), cls


# --- method calls of instance attributes ----------------------------------------------------------

#: Attributes called as ``self.x(...)`` off a plain request's path: rate limits' clock and
#: the client-certificate host test.
_FEATURE_ONLY = {("IngressASGI", "limit_clock"), ("IngressASGI", "tls_host")}


def _instance_attribute_calls(classes: list[type]) -> list[tuple[str, str, str]]:
    """``(class, function, attribute)`` of every ``self.attribute(...)`` in ``classes``'
    functions whose attribute the class does not define (an instance attribute)."""
    found = []
    for cls in classes:
        for name, fn in vars(cls).items():
            code = getattr(fn, "__code__", None)
            if code is None:
                continue
            ins = list(dis.get_instructions(code))
            for a, b in zip(ins, ins[1:]):
                if a.opname == "LOAD_FAST" and a.argval == "self" \
                        and b.opname == "LOAD_METHOD" and not hasattr(cls, b.argval):
                    found.append((cls.__name__, name, b.argval))
    return found


def test_per_request_paths_call_no_instance_attribute_as_a_method() -> None:
    classes = [IngressASGI, AccessLog, AccessLogFormatter, ClientConnection, Proxy,
               *_reply_classes()]
    found = [f for f in _instance_attribute_calls(classes) if (f[0], f[2]) not in _FEATURE_ONLY]
    assert found == []


def test_the_method_call_guard_sees_one() -> None:
    # The control: an instance attribute called through self is found, a method is not.
    class Probe:
        def __init__(self) -> None:
            self.clock: Callable[[], float] = time.monotonic

        def tick(self) -> float:
            return self.clock()

        def tock(self) -> float:
            return self.tick()

    assert _instance_attribute_calls([Probe]) == [("Probe", "tick", "clock")]


# --- RequestRecord's __init__ (the lead, from Q2's note) ---------------------------------------
# One RequestRecord per request with records on (serve): its 40 fields were stored through the
# dataclass's ``object.__setattr__(self, name, value)`` each (~4.7 us a record); now through each
# slot's own setter (~2.8 us, timeit side by side), with the same signature and still frozen.


def test_request_record_init_stores_through_the_slots_not_object_setattr() -> None:
    import dataclasses
    import inspect

    from ingresslib.proxy import RequestRecord

    init = RequestRecord.__init__
    assert "__dataclass_builtins_object__" not in init.__code__.co_names
    assert not [n for n in init.__code__.co_names if "setattr" in n]
    # The signature the dataclass generates: every field, in order, with its default.
    params = list(inspect.signature(RequestRecord).parameters.values())
    fields = dataclasses.fields(RequestRecord)
    assert [p.name for p in params] == [f.name for f in fields]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        for f in fields]
    assert init.__annotations__["server_port"] == "int | None"
    required = [f.name for f in fields if f.default is dataclasses.MISSING]
    values = {name: i for i, name in enumerate(required)}
    by_name = RequestRecord(**values, scheme="https")  # type: ignore[arg-type]
    by_place = RequestRecord(*values.values(), scheme="https")  # type: ignore[arg-type]
    assert by_name == by_place and by_name.scheme == "https" and by_name.access_log is True
    assert dataclasses.replace(by_name, status=404).status == 404
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_name.status = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        RequestRecord(**{k: v for k, v in values.items() if k != "status"})  # type: ignore[arg-type]
