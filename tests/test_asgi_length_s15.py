"""Request framing and body limits: IngressASGI answers as the proxy does (session 15).

The proxy reads a request's Content-Length as h11 does (``[0-9]+``, at most 20 digits), then
refuses a value over 2**63 - 1 (nginx's off_t: ``ngx_atoof`` fails, "client sent invalid
"Content-Length" header", 400, before the TRACE 405 and before any location). IngressASGI read
it with ``int()``, which takes ``+5``, ``1_000``, ``-5``, ``"\\x0b5"`` and numbers of any size,
and gives up (-1: "no length") on the rest: where the proxy answers 400 the adapter answered
413 (``+5``, ``1_0``, a 19-digit number, with a limit) or called the app (``-5``, ``5 5``, an
empty value, UTF-8 Arabic-Indic digits, any of them with ``proxy-body-size: "0"``). Likewise a
Transfer-Encoding the proxy refuses (400: with a Content-Length, on HTTP/1.0, a coding other
than ``chunked``) reached the app: uvicorn's h11 passes the first two on (it reads such a body
chunked), a server on httptools ``gzip, chunked``.

The scopes here are the ones a server that lets these lines through builds (one on ``int()``,
as twisted's was, or uvicorn for the Transfer-Encoding cases: ``test_uvicorn_*``); the
comparison is tests/_agree_s13.py's, through both request paths, with
tests/test_proxy_asgi_agree_s13.py's manifests, settings and requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib._asgi import IngressASGI
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings

from _agree_s13 import (
    P,
    IngressSpec,
    PathSpec,
    RequestSpec,
    _resources,
    manifests_text,
    via_asgi,
    via_proxy,
)
from test_asgi import Served
from test_proxy_asgi_agree_s13 import check_agree, ingress_sets, proxy_settings, requests


@dataclass(frozen=True)
class FramedSpec(RequestSpec):
    """A RequestSpec whose framing lines are given as sent (bytes, in order), instead of the
    Content-Length / Transfer-Encoding RequestSpec writes; the body is sent chunked when a
    Transfer-Encoding line says ``chunked``. The scope holds the same lines, names
    lower-cased, values as sent (a server that passes them on)."""

    framing: tuple[tuple[bytes, bytes], ...] = ()

    def _framing(self) -> list[tuple[str, str]]:
        return []

    def wire(self) -> bytes:
        head, _, body = super().wire().partition(b"\r\n\r\n")
        lines = b"".join(b"\r\n%s: %s" % (n, v) for n, v in self.framing)
        if any(n.lower() == b"transfer-encoding" and v.strip(b" \t").lower() == b"chunked"
               for n, v in self.framing):
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        return head + lines + b"\r\n\r\n" + body

    def scope(self) -> dict[str, Any]:
        scope = super().scope()
        scope["headers"] = scope["headers"] + [(n.lower(), v) for n, v in self.framing]
        return scope


PLAIN = (IngressSpec("web", "a.test", (PathSpec("/", "Prefix", "s0"),)),)
CL = b"Content-Length"
TE = b"Transfer-Encoding"

#: Content-Length values the proxy refuses (400) that ``int()`` reads or gives up on.
REFUSED_LENGTHS = (
    b"+5", b"-5", b"-0", b"1_0", b"", b"5 5", b"0x5", b"\x0b5", b"5\x0c",
    "\u0665".encode(),  # ARABIC-INDIC DIGIT FIVE, as UTF-8
    b"5,5", b"5, 5",
    b"9" * 19, str(2 ** 63).encode(),  # over nginx's off_t
    b"9" * 21, b"0" * 20 + b"5",  # over h11's 20 digits, leading zeros counted
    b"9" * 5000,  # past int()'s 4300 digits: it gave -1, "no length"
)
#: Content-Length values both read as a number (SP/HTAB around it are OWS on the wire).
READ_LENGTHS = (b"5", b"05", b" 5", b"5\t", b"0" * 19 + b"5", str(2 ** 63 - 1).encode())


def _agree(req: RequestSpec, settings: ProxySettings) -> tuple[int, str | None]:
    text = manifests_text(PLAIN)
    proxy = via_proxy(text, req, settings, frozenset())
    asgi = via_asgi(text, req, settings, frozenset())
    assert proxy == asgi
    return proxy.status, proxy.backend


@pytest.mark.parametrize("limit", [4, 0, 1048576])
@pytest.mark.parametrize("method", ["POST", "TRACE"])
@pytest.mark.parametrize("value", REFUSED_LENGTHS)
def test_content_length_the_proxy_refuses_is_400_limit_or_not(
        value: bytes, method: str, limit: int) -> None:
    # Before: 413 for +5, 1_0, \x0b5 and the 19- to 21-digit numbers under a limit (int()
    # read them), the app called for the others and for all of them with proxy-body-size 0
    # (or under 1 MiB); the TRACE 405 instead of nginx's 400, which comes first.
    req = FramedSpec(method, "/", "a.test", (), b"abcde", False, "127.0.0.1",
                     framing=((CL, value),))
    assert _agree(req, ProxySettings(proxy_body_size=limit)) == (400, None)


@pytest.mark.parametrize("limit", [4, 0])
@pytest.mark.parametrize("value", READ_LENGTHS)
def test_content_length_read_alike(value: bytes, limit: int) -> None:
    req = FramedSpec("POST", "/", "a.test", (), b"abcde", False, "127.0.0.1",
                     framing=((CL, value),))
    assert _agree(req, ProxySettings(proxy_body_size=limit)) == \
        ((413, None) if limit else (200, "s0"))


def test_content_length_over_the_annotation_limit_is_413_before_the_app() -> None:
    ingresses = (IngressSpec("web", "a.test", (PathSpec("/", "Prefix", "s0"),),
                             ((P + "proxy-body-size", "1k"),)),)
    text = manifests_text(ingresses)
    for value, status in ((b"1024", 200), (b"1025", 413), (b"+1025", 400), (b"1_025", 400)):
        req = FramedSpec("POST", "/", "a.test", (), b"x" * 1024, False, "127.0.0.1",
                         framing=((CL, value),))
        proxy = via_proxy(text, req, ProxySettings(), frozenset())
        asgi = via_asgi(text, req, ProxySettings(), frozenset())
        assert proxy == asgi
        assert proxy.status == status


@pytest.mark.parametrize("http10", [False, True])
@pytest.mark.parametrize("framing", [
    ((TE, b"chunked"), (CL, b"5")),
    ((CL, b"5"), (TE, b"chunked")),
    ((TE, b"gzip, chunked"),),
    ((TE, b"identity"),),
    ((TE, b"chunked, chunked"),),
    ((TE, b""),),
])
def test_transfer_encoding_the_proxy_refuses_is_400(
        framing: tuple[tuple[bytes, bytes], ...], http10: bool) -> None:
    # Before: the app was called (the adapter looked at a second Transfer-Encoding line only).
    req = FramedSpec("POST", "/", "a.test", (), b"abcde", False, "127.0.0.1", http10=http10,
                     framing=framing)
    assert _agree(req, ProxySettings()) == (400, None)


@pytest.mark.parametrize("value", [b"chunked", b"Chunked", b" chunked"])
def test_chunked_on_http10_is_400_and_on_http11_read(value: bytes) -> None:
    req = FramedSpec("POST", "/", "a.test", (), b"abcde", False, "127.0.0.1",
                     framing=((TE, value),))
    assert _agree(req, ProxySettings()) == (200, "s0")
    assert _agree(replace(req, http10=True), ProxySettings()) == (400, None)
    # Without Host: HTTP/1.0 too.
    assert _agree(replace(req, host=None), ProxySettings()) == (400, None)


def test_chunked_body_over_the_limit_is_413() -> None:
    # docs/asgi.md: a body without Content-Length is counted as the app reads it; the app is
    # called (the proxy refuses before any upstream sees the head: the documented difference).
    req = FramedSpec("POST", "/", "a.test", (), b"abcdef", False, "127.0.0.1",
                     framing=((TE, b"chunked"),))
    text = manifests_text(PLAIN)
    proxy = via_proxy(text, req, ProxySettings(proxy_body_size=5), frozenset())
    asgi = via_asgi(text, req, ProxySettings(proxy_body_size=5), frozenset())
    assert (proxy.status, proxy.backend, asgi.status) == (413, None, 413)
    assert _agree(req, ProxySettings(proxy_body_size=6)) == (200, "s0")
    assert _agree(req, ProxySettings(proxy_body_size=0)) == (200, "s0")


# -- in process: what the app and the server see -----------------------------------------------


def _app_and_calls(settings: ProxySettings) -> tuple[IngressASGI, list[str]]:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return  # a real server's lifespan, handed on by IngressASGI
        calls.append("app")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    router = Router(_resources(manifests_text(PLAIN)), seed=1)
    return IngressASGI(router, {"default/s0": app}, settings=settings), calls


def _call(app: IngressASGI, headers: list[tuple[bytes, Any]], calls: list[str],
          method: str = "POST") -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        # uvicorn sends "100 Continue" when the app first awaits receive() (its h11 and
        # httptools protocols: ``waiting_for_100_continue``): no call, no 100.
        calls.append("receive")
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"a.test"), (b"expect", b"100-continue"), *headers]}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


@pytest.mark.parametrize("rewrite", [True, False])
@pytest.mark.parametrize("general", [False, True])
def test_expect_100_continue_refused_before_the_body_is_asked_for(rewrite: bool,
                                                                  general: bool) -> None:
    # nginx answers a length over client_max_body_size (and an invalid one) before it reads
    # the body, so before it sends "100 Continue"; the adapter must not call receive().
    for value, limit, status in ((b"+5", 4, 400), (b"1_0", 0, 400), (b"-5", 4, 400),
                                 (b"5", 4, 413), (b"5", 0, 200)):
        app, calls = _app_and_calls(ProxySettings(proxy_body_size=limit))
        app.rewrite_headers = rewrite
        if general:
            app._names = None  # the general path (``_read_headers``)
        assert _call(app, [(b"content-length", value)], calls) == status, value
        assert calls == ([] if status != 200 else ["app"]), value


@pytest.mark.parametrize("general", [False, True])
def test_content_length_not_a_byte_string_is_400(general: bool) -> None:
    # A str value (Arabic-Indic "5", which int() reads as 5): no value the proxy could get.
    app, calls = _app_and_calls(ProxySettings(proxy_body_size=4))
    if general:
        app._names = None
    assert _call(app, [(b"content-length", "\u0665")], calls) == 400
    assert _call(app, [(b"content-length", bytearray(b"3"))], calls) == 200
    assert calls == ["app"]


# -- a real server: uvicorn (h11) passes these Transfer-Encoding requests on -------------------


@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
    b"Connection: close\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
    b"POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nabcde\r\n0\r\n\r\n",
])
def test_uvicorn_passes_ambiguous_framing_the_adapter_refuses(request_bytes: bytes) -> None:
    app, calls = _app_and_calls(ProxySettings())

    async def run() -> int:
        async with Served(app) as served:
            status, _ = await served.raw(request_bytes)
            return status

    assert asyncio.run(run()) == 400
    assert calls == []


# -- the differential property, with the framing lines drawn --------------------------------------

#: Content-Length values made from the body's length (``{n}``): ones both read, ones the
#: proxy refuses.
GOOD_LENGTHS = ("{n}", "0{n}", " {n}", "{n}\t", "9223372036854775807")
BAD_LENGTHS = ("+{n}", "-{n}", "{n}_0", "", "{n} {n}", "\x0b{n}", "{n},{n}", "0x{n}",
               "9223372036854775808", "999999999999999999999", "\u0665")
TE_FORMS = (b"chunked", b"chunked", b"Chunked", b"gzip, chunked", b"identity",
            b"chunked, chunked")


@st.composite
def framings(draw: st.DrawFn, body: bytes) -> tuple[tuple[bytes, bytes], ...]:
    lines: list[tuple[bytes, bytes]] = []
    if draw(st.integers(0, 3)):
        # Mostly good ones: most examples should get past the head to the routing.
        form = draw(st.sampled_from(BAD_LENGTHS if draw(st.integers(0, 2)) == 0
                                    else GOOD_LENGTHS))
        lines.append((draw(st.sampled_from((CL, b"content-length"))),
                      form.format(n=len(body)).encode("utf-8")))
    if draw(st.integers(0, 5)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), (TE, draw(st.sampled_from(TE_FORMS))))
    return tuple(lines)


@given(data=st.data(), ingresses=ingress_sets(), settings=proxy_settings(),
       https_port=st.sampled_from((443, 443, 8443)))
def test_proxy_and_asgi_agree_on_framing(data: st.DataObject,
                                         ingresses: tuple[IngressSpec, ...],
                                         settings: ProxySettings, https_port: int) -> None:
    base = data.draw(requests(ingresses), label="request")
    framing = data.draw(framings(base.body), label="framing")
    chunked = any(n == TE and v.lower() == b"chunked" for n, v in framing)
    if not framing and base.body:
        framing = ((CL, b"%d" % len(base.body)),)  # a body needs its framing
    req = FramedSpec(**{f.name: getattr(base, f.name) for f in fields(RequestSpec)},
                     framing=framing)
    check_agree(ingresses, replace(req, chunked=chunked and req.version == "1.1"), settings,
                https_port)
