"""Second review of header shaping, request and response (session 34, x21).

The spec: nginx's ngx_http_proxy_module.c (``ngx_http_proxy_headers``, ``ngx_http_proxy_hide_
headers``), ngx_http_header_filter_module.c, headers-more (``more_set_headers``, which
ingress-nginx's nginx.tmpl writes for ``add-headers`` and ``custom-headers``) and nginx.tmpl.
Forwarded headers and the client address were reviewed in session 18 and again in session 33
(x9): not here.

Defects found and fixed (every test below failed before its fix, but the two that pin what
was right already: ``test_an_ordinary_entry_still_applies`` and
``test_connection_on_answers_as_the_readme_row_says``):

1. An ``add-headers`` or ``custom-headers`` entry naming a header that frames the answer's body
   or manages the client connection (``Content-Length``, ``Transfer-Encoding``, ``Connection``,
   ``Upgrade``, ``Keep-Alive``, ``TE``, ``Trailer``, ``Proxy-Connection``,
   ``Proxy-Authorization``) replaced this hop's own. ``Content-Length: 1`` on a 5-byte answer
   left 4 bytes that a keep-alive client reads as the start of the next response (response
   splitting); ``Transfer-Encoding: chunked`` beside the real Content-Length made a client read
   a plain body as chunks; ``Connection: keep-alive`` replaced the ``Connection: close`` of the
   answer after which the proxy closes (``keep-alive-requests`` reached). headers-more does the
   same harm in ingress-nginx (``ngx_http_set_content_length_header`` sets
   ``content_length_n`` from the value; any other of these is a plain header beside nginx's
   own), so ingresslib refuses such an entry as it refuses one with a control character: the
   whole set, with a warning (proxy/_header_sets.py ``CustomHeaders._name_problem``; README).
2. IngressASGI passed the app's ``Date``: behind uvicorn, which puts its own ``date`` before
   the app's headers, the client got two Date lines. nginx hides an upstream's Date
   (``ngx_http_proxy_hide_headers``) and writes its own, as the proxy core replaces its
   upstream's: IngressASGI now drops the app's, on a ``websocket.accept`` too
   (_asgi_reply.py ``_APP_HIDDEN``; docs/asgi.md).
3. A ConfigMap value with spaces around it (``" main "``) was sent with them: behind
   IngressASGI, uvicorn's h11 refuses such a value ("Illegal header value") and every answer
   of the app failed (the connection closed with no answer). headers-more skips the leading
   spaces, and RFC 9110 §5.5 makes neither part of a field value: ingresslib drops both, in
   ``add-headers``, ``custom-headers`` and ``proxy-set-headers`` (README row).

Checked and found right (no change):

- Request side, core and IngressASGI (one rule, ``request_header_kind``): ``Connection``,
  ``Keep-Alive``, ``TE``, ``Trailer``, ``Proxy-Connection``, ``Proxy-Authorization`` and the
  names a ``Connection`` header lists are not forwarded; ``Proxy`` (httpoxy, nginx.tmpl
  ``proxy_set_header Proxy ""``) and ``Expect`` neither; ``Upgrade`` only with
  ``Connection: upgrade`` on an upgrade (README row); ``Content-Length`` re-derived, never the
  client's spelling; ``X-Original-URI`` from the client dropped; invalid and ``_`` names per
  ``ignore-invalid-headers`` / ``enable-underscores-in-headers`` (s21).
- ``proxy-set-headers``: replaces the client's header of that name whatever its case; an empty
  value sends neither; a name this hop writes or drops (``Host``, ``X-Request-ID``,
  ``X-Forwarded-*``, ``Connection``, ``Content-Length``...) refuses the set (README row: nginx
  would send two); the name is written as the ConfigMap spells it; IngressASGI the same (s25).
- Response side: the upstream's ``Server`` (unless ``server-tokens`` +
  ``allow-backend-server-header``), ``X-Pad`` and every ``X-Accel-*`` never reach the client,
  in the core and IngressASGI, on a 101 too; the upstream's ``Date`` is replaced by this hop's;
  this hop's own answers carry ``Date`` and, only with ``server-tokens``, ``Server``;
  hop-by-hop and Connection-listed response headers are dropped; a 204 loses its
  Content-Length.
- ``add-headers`` / ``custom-headers``: ``more_set_headers`` on every status (not nginx's
  ``add_header`` list): the upstream's 404, the core's own 403 (allowlist), 308
  (ssl-redirect), 301 (permanent-redirect), 413; not a denied location's 503; each replaces an
  upstream header of its name compared case-insensitively, written as the ConfigMap spells
  it, once; values with CR, LF, NUL, non-ASCII or ``$`` refuse the set with a warning;
  ``hide-headers`` never hides the framing nor this hop's own headers (s25).
- ``X-Accel-Redirect`` / ``-Limit-Rate`` / ``-Charset``: nginx acts on them (an internal
  redirect, a rate, a charset); ingresslib drops them and forwards the answer (a README row
  added, no code change).
- ``Connection`` on answers: nginx writes ``Connection: keep-alive`` on every answer of a
  connection kept, ingresslib none to an HTTP/1.1 client (a README row added, pinned by the
  last test).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX

from _asgi_call import asgi_exchange
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml

GET = b"GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n"
HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
#: The names an answer's framing or its connection depend on.
OWN_NAMES = ["Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Keep-Alive",
             "content-length", "TE", "Trailer", "Proxy-Connection"]


def config_map_yaml(name: str, namespace: str, data: dict[str, str]) -> str:
    body = ", ".join(f'"{k}": "{v}"' for k, v in data.items())
    return (f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: "
            f"{namespace}}}\ndata: {{{body}}}\n")


def _value_for(name: str) -> str:
    return {"content-length": "1", "transfer-encoding": "chunked",
            "connection": "keep-alive"}.get(name.lower(), "x")


def _pair(settings: ProxySettings, extra: str, annotations: dict[str, str] | None = None
          ) -> ProxyPair:
    docs = ingress_yaml("web", "example.test", annotations or {}) + extra + WEB_SERVICE_YAML
    return ProxyPair(router=Router(parse_manifests(docs)), settings=settings,
                     app=lambda req, body, up: Reply(HELLO))


def _heads(out: bytes) -> list[list[tuple[bytes, bytes]]]:
    """Each response head's (lower-case name, value) pairs (every body here is ``hello``)."""
    heads = []
    for chunk in out.split(b"hello"):
        if chunk:
            lines = chunk.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
            heads.append([(n.strip().lower(), v.strip()) for n, _, v in
                          (line.partition(b":") for line in lines)])
    return heads


# --- add-headers / custom-headers naming this hop's framing or connection headers ----------

@pytest.mark.parametrize("name", OWN_NAMES)
def test_add_headers_cannot_replace_the_framing_or_connection_headers(
        name: str, caplog: pytest.LogCaptureFixture) -> None:
    cm = config_map_yaml("global", "ingress", {name: _value_for(name), "X-Site": "main"})
    with caplog.at_level(logging.WARNING, logger="ingresslib.proxy"):
        p = _pair(ProxySettings(add_headers="ingress/global"), cm)
        out = p.send(GET + GET)
    # Two whole answers, each framed by the 5 bytes it carries: nothing left over for the
    # client to read as the next response.
    assert out == HELLO + HELLO, out  # the set refused whole: the upstream's answers as sent
    said = [r.getMessage() for r in caplog.records if "add-headers" in r.getMessage()]
    assert said and name in said[-1] and "no header added" in said[-1]


def test_add_headers_connection_cannot_hide_the_close() -> None:
    # keep-alive-requests reached: the proxy closes after this answer, and says so.
    cm = config_map_yaml("global", "ingress", {"Connection": "keep-alive"})
    p = _pair(ProxySettings(add_headers="ingress/global", keep_alive_requests=1), cm)
    out = p.send(GET)
    assert p.closed
    assert _heads(out) == [[(b"content-length", b"5"), (b"connection", b"close")]]


@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "Connection"])
def test_custom_headers_cannot_replace_the_framing_or_connection_headers(name: str) -> None:
    # Even listed in global-allowed-response-headers.
    cm = config_map_yaml("hdrs", "default", {name: _value_for(name), "X-Team": "web"})
    settings = ProxySettings(global_allowed_response_headers=(name, "X-Team"))
    p = _pair(settings, cm, {PREFIX + "custom-headers": "default/hdrs"})
    out = p.send(GET + GET)
    assert _heads(out) == [[(b"content-length", b"5")]] * 2, out


def test_an_ordinary_entry_still_applies() -> None:
    # (The refusal is by name: the same ConfigMap without the framing entry is applied.)
    cm = config_map_yaml("global", "ingress", {"X-Site": "main", "Content-Type": "text/x"})
    out = _pair(ProxySettings(add_headers="ingress/global"), cm).send(GET)
    assert _heads(out) == [[(b"content-length", b"5"), (b"content-type", b"text/x"),
                            (b"x-site", b"main")]]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "Connection"])
def test_asgi_add_headers_cannot_replace_the_framing_or_connection_headers(name: str) -> None:
    res = parse_manifests(ingress_yaml("web", "example.test", {}) + config_map_yaml(
        "global", "ingress", {name: _value_for(name), "X-Site": "main"}))
    app = IngressASGI(res, backends={"default/web": _app},
                      settings=ProxySettings(add_headers="ingress/global"))
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": [(b"host", b"example.test")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    assert [(bytes(n).lower(), bytes(v)) for n, v in sent[0]["headers"]] == \
        [(b"content-length", b"5")]


# --- IngressASGI: the app's Date --------------------------------------------------------------

def _asgi_start(app: Any, settings: ProxySettings, extra: str = "") -> dict[str, Any]:
    """The response start IngressASGI hands its server for ``GET /x`` to example.test."""
    res = parse_manifests(ingress_yaml("web", "example.test", {}) + extra)
    adapter = IngressASGI(res, backends={"default/web": app}, settings=settings)
    return asgi_exchange(adapter, "example.test", query=b"")[0]


def _dated(name: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(name, b"Thu, 01 Jan 1970 00:00:00 GMT"),
                                (b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})
    return app


@pytest.mark.parametrize("name", [b"date", b"Date", b"DATE"])
@pytest.mark.parametrize("settings", [ProxySettings(), ProxySettings(
    server_tokens=True, allow_backend_server_header=True)], ids=["plain", "backend-server"])
def test_asgi_drops_the_apps_date_as_the_proxy_replaces_its_upstreams(
        name: bytes, settings: ProxySettings) -> None:
    # nginx hides an upstream's Date (ngx_http_proxy_hide_headers) and its header filter
    # writes its own; the proxy core replaces the upstream's. Behind IngressASGI the server
    # writes its own: uvicorn puts its "date" before the app's headers, two Date lines.
    start = _asgi_start(_dated(name), settings)
    assert [bytes(n).lower() for n, _ in start["headers"]
            if bytes(n).lower() != b"server"] == [b"content-length"]


def test_asgi_drops_the_apps_date_from_a_websocket_accept() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept",
                    "headers": [(b"date", b"Thu, 01 Jan 1970 00:00:00 GMT"), (b"x-kept", b"1")]})
        await send({"type": "websocket.close", "code": 1000})

    res = parse_manifests(ingress_yaml("web", "example.test", {}))
    adapter = IngressASGI(res, backends={"default/web": app})
    sent: list[dict[str, Any]] = []
    events = [{"type": "websocket.connect"}]

    async def receive() -> Any:
        return events.pop(0) if events else {"type": "websocket.disconnect", "code": 1000}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "ws", "path": "/x", "raw_path": b"/x", "root_path": "",
             "query_string": b"", "client": ("10.1.1.1", 5000), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"example.test")], "subprotocols": []}
    asyncio.run(adapter(scope, receive, send))
    assert sent[0]["type"] == "websocket.accept"
    assert [n for n, _ in sent[0]["headers"]] == [b"x-kept"]


# --- a ConfigMap value with spaces around it --------------------------------------------------

SPACED = {"X-Site": " main ", "X-Frame-Options": "SAMEORIGIN  "}


def test_core_writes_a_spaced_value_without_its_spaces() -> None:
    # headers-more skips the spaces before the value (ngx_http_headers_more_parse_header:
    # "if (value.len == 0) { if (... || isspace(raw_header->data[i])) continue;"); the spaces
    # after it are no part of a field value (RFC 9110 §5.5: "a field value does not include
    # leading or trailing whitespace"), and a client strips them (OWS).
    cm = config_map_yaml("global", "ingress", SPACED)
    out = _pair(ProxySettings(add_headers="ingress/global"), cm).send(GET)
    assert b"\r\nX-Frame-Options: SAMEORIGIN\r\nX-Site: main\r\n" in out, out


def test_asgi_hands_its_server_a_value_h11_takes() -> None:
    # uvicorn's h11 refuses a value with spaces around it ("Illegal header value b' main '"):
    # every answer of the app failed (500).
    cm = config_map_yaml("global", "ingress", SPACED)
    start = _asgi_start(_app, ProxySettings(add_headers="ingress/global"), cm)
    headers = [(bytes(n).lower(), bytes(v)) for n, v in start["headers"]]
    assert (b"x-site", b"main") in headers and (b"x-frame-options", b"SAMEORIGIN") in headers
    h11.Response(status_code=200, headers=headers)  # (h11's own check: raises on a bad value)


def test_proxy_set_headers_values_lose_their_spaces_too() -> None:
    # (The bytes on the wire: a parser strips the spaces around a value as it reads it.)
    docs = ingress_yaml("web", "example.test", {}) + config_map_yaml(
        "upstream", "ingress", {"X-Env": "  prod "}) + WEB_SERVICE_YAML
    p = ProxyPair(router=Router(parse_manifests(docs)),
                  settings=ProxySettings(proxy_set_headers="ingress/upstream"),
                  app=lambda req, body, up: Reply(HELLO))
    assert p.send(GET).startswith(b"HTTP/1.1 200 ")
    raw = bytes(p.upstreams[0].raw)
    assert b"\r\nX-Env: prod\r\n" in raw[:raw.index(b"\r\n\r\n") + 2], raw


def test_connection_on_answers_as_the_readme_row_says() -> None:
    # README: an HTTP/1.1 answer on a connection kept carries no Connection header (nginx
    # writes "Connection: keep-alive"); the last one before the close says "close"; an
    # HTTP/1.0 client kept is told "keep-alive".
    cm = config_map_yaml("global", "ingress", {"X-Site": "main"})
    p = _pair(ProxySettings(keep_alive_requests=2), cm)
    first = p.send(GET)
    assert [n for n, _ in _heads(first)[0]] == [b"content-length"]
    assert _heads(p.send(GET)) == [[(b"content-length", b"5"), (b"connection", b"close")]]
    p = _pair(ProxySettings(), cm)
    out = p.send(b"GET /x HTTP/1.0\r\nHost: example.test\r\nConnection: keep-alive\r\n\r\n")
    assert (b"connection", b"keep-alive") in _heads(out)[0] and not p.closed
