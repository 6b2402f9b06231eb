"""Session 26, helper MR: request mirroring (``mirror-target``, ``mirror-request-body``,
``mirror-host``; proxy/_mirror.py).

ingress-nginx's annotations/mirror/main.go, nginx.tmpl's ``mirror``/``mirror_request_body`` and
template.go ``buildMirrorLocations`` (``location = /_mirror-<uid> { internal; proxy_set_header
Host <host>; proxy_pass <target>; }``), nginx's ngx_http_mirror_module.c (precontent phase, the
answer discarded). Before this session the three annotations were "not implemented by
ingresslib; ignored": no request was ever mirrored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import ingresslib
from ingresslib.proxy import (Mirror, OpenUpstream, Proxy, SendDownstream, SendUpstream)
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options
from ingresslib.proxy._mirror import parse_mirror
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings

P = "nginx.ingress.kubernetes.io/"


def _yaml(annotations: dict[str, str], *, port: int = 8080, canary: dict[str, str] | None = None,
          extra_rule: str = "") -> str:
    def ann(a: dict[str, str]) -> str:
        if not a:
            return "{}"
        return "{" + ", ".join(f'"{k}": "{v}"' for k, v in a.items()) + "}"
    out = f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {ann(annotations)}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
{extra_rule}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: web}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}}}]}}]
"""
    if canary is not None:
        out += f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  annotations: {ann(canary)}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: canary, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: canary}}
spec: {{ports: [{{port: 80, targetPort: 8081}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: canary}}
subsets: [{{addresses: [{{ip: 127.0.0.2}}], ports: [{{port: 8081}}]}}]
"""
    return out


def _proxy(annotations: dict[str, str], **kw: Any) -> Proxy:
    res = ingresslib.parse_manifests(_yaml(annotations, **{k: v for k, v in kw.items()
                                                          if k in ("port", "canary",
                                                                   "extra_rule")}))
    return Proxy(ingresslib.Router(res, seed=0), kw.get("settings"),
                 request_id=lambda: "rid", clock=None)


def _feed(proxy: Proxy, *chunks: bytes, answer: bytes | None = None) -> list[Any]:
    """The actions of a connection fed ``chunks``, its upstream connected (and answering
    ``answer``)."""
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    acts: list[Any] = conn.start(0.0)
    for c in chunks:
        acts += conn.receive_data(c, 0.0)
    opens = [a for a in acts if isinstance(a, OpenUpstream)]
    if opens:
        acts += conn.upstream_connected(opens[0].conn_id, 0.0)
        if answer is not None:
            acts += conn.upstream_data(opens[0].conn_id, answer, 0.0)
    return acts


def _mirrors(acts: list[Any]) -> list[Mirror]:
    return [a for a in acts if isinstance(a, Mirror)]


def _split(data: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        assert name.lower() not in headers, line
        headers[name.lower()] = value.strip()
    return lines[0], headers, body


TARGET = {P + "mirror-target": "http://127.0.0.1:9999$request_uri"}
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


# -- parsing (annotations/mirror/main.go) ----------------------------------------------------


def _parse(ann: dict[str, str]) -> tuple[Any, list[str]]:
    said: list[str] = []
    m = parse_mirror(ann, P, lambda key, msg: said.append(f"{key}: {msg}"))
    return m, said


def test_the_three_annotations_are_implemented_no_longer_warned_as_ignored() -> None:
    assert {"mirror-target", "mirror-request-body", "mirror-host"} <= IMPLEMENTED
    opts = parse_route_options({P + "mirror-target": "https://m.test$request_uri",
                                P + "mirror-request-body": "off", P + "mirror-host": "x.test"},
                               "/", ProxySettings())
    assert opts.warnings == ()
    assert opts.mirror is not None and opts.mirror.request_body is False
    assert PREFIX == P


def test_target_host_port_and_default_host_as_ingress_nginx_tests_them() -> None:
    # main_test.go: "https://test.env.com:8080$request_uri" -> Host "test.env.com" (no port).
    m, said = _parse({P + "mirror-target": "https://test.env.com:8080$request_uri"})
    assert said == [] and m is not None
    assert (m.tls, m.host, m.port, m.host_header, m.request_body) == (
        True, "test.env.com", 8080, b"test.env.com", True)
    m, _ = _parse({P + "mirror-target": "http://some.test.env.com"})
    assert m is not None and (m.tls, m.port, m.uri) == (False, 80, None)
    m, _ = _parse({P + "mirror-target": "http://[::1]:8081$request_uri"})
    assert m is not None and (m.host, m.port, m.host_header) == ("::1", 8081, b"[::1]")
    m, _ = _parse({P + "mirror-target": "HTTPS://m.test/x"})
    assert m is not None and (m.tls, m.port, m.uri) == (True, 443, "/x")


def test_request_target_expands_request_uri_and_appends_args_only_without_variables() -> None:
    def target(value: str, uri: str = "/a/b?q=1", args: str | None = "q=1") -> bytes:
        m, said = _parse({P + "mirror-target": value})
        assert m is not None, said
        return m.request_target(uri, args)
    assert target("http://m.test$request_uri") == b"/a/b?q=1"
    assert target("http://m.test/$request_uri") == b"//a/b?q=1"
    assert target("http://m.test/shadow${request_uri}") == b"/shadow/a/b?q=1"
    assert target("http://m.test/shadow") == b"/shadow?q=1"
    assert target("http://m.test/shadow", args=None) == b"/shadow"
    # No path: nginx sends its internal /_mirror-<Ingress UID>; ingresslib "/" (README row).
    assert target("http://m.test") == b"/?q=1"


@pytest.mark.parametrize("value", [
    "IamNotAURL",                          # main_test.go: no Host, no mirror location
    "ftp://m.test/x",
    "http://m.test/a b",                   # validator: no space
    "http://m.test/%41",                   # validator: no "%"
    'http://m.test/"x',
    "http://m.test/$someparam=1",          # a variable ingresslib does not expand
    "http://$host/x",
    "http://m.test:99999/x",
    "http://:80/x",
    "",
])
def test_an_invalid_target_is_warned_and_nothing_is_mirrored(value: str) -> None:
    m, said = _parse({P + "mirror-target": value})
    assert m is None
    assert len(said) == 1 and said[0].startswith(P + "mirror-target: ")


def test_invalid_host_or_body_values_default_with_a_warning() -> None:
    m, said = _parse({P + "mirror-target": "http://m.test:81/x", P + "mirror-host": "a b",
                      P + "mirror-request-body": "no"})
    assert m is not None and m.host_header == b"m.test" and m.request_body is True
    assert [s.split(":")[0] for s in said] == [P + "mirror-request-body", P + "mirror-host"]
    m, said = _parse({P + "mirror-target": "http://m.test/x", P + "mirror-host": "$host"})
    assert m is not None and m.host_header == b"m.test" and "variables" in said[0]
    m, said = _parse({P + "mirror-host": "x.test"})
    assert m is None and said == [P + "mirror-host: has no effect without mirror-target: "
                                  "nothing is mirrored"]


# -- the core (Proxy.connection) -------------------------------------------------------------


def test_a_mirrored_post_carries_method_target_host_and_body_once_the_body_is_in() -> None:
    proxy = _proxy({**TARGET, P + "mirror-host": "shadow.test"})
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    acts = conn.start(0.0) + conn.receive_data(
        b"POST /x/y?q=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nX-Custom: 1\r\n\r\nhel",
        0.0)
    assert _mirrors(acts) == []  # mirror-request-body on: the body first
    (op,) = [a for a in acts if isinstance(a, OpenUpstream)]
    acts = conn.upstream_connected(op.conn_id, 0.0) + conn.receive_data(b"lo", 0.0)
    (m,) = _mirrors(acts)
    assert (m.endpoint, m.tls) == (("127.0.0.1", 9999), False)
    assert (m.connect_timeout, m.send_timeout, m.read_timeout) == (5.0, 60.0, 60.0)
    line, headers, body = _split(m.data)
    assert line == b"POST /x/y?q=1 HTTP/1.1"
    assert headers[b"host"] == b"shadow.test"
    assert headers[b"content-length"] == b"5" and body == b"hello"
    assert headers[b"connection"] == b"close" and headers[b"x-custom"] == b"1"
    assert headers[b"x-request-id"] == b"rid" and headers[b"x-real-ip"] == b"192.0.2.7"
    # The backend's request is the same as without a mirror.
    up = b"".join(a.data for a in acts if isinstance(a, SendUpstream))
    plain = _feed(_proxy({}), b"POST /x/y?q=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"X-Custom: 1\r\n\r\nhello")
    assert up == b"".join(a.data for a in plain if isinstance(a, SendUpstream))
    assert b"shadow" not in up


def test_mirror_request_body_off_sends_at_once_without_body_or_length() -> None:
    acts = _feed(_proxy({**TARGET, P + "mirror-request-body": "off"}),
                 b"PUT /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\n")
    (m,) = _mirrors(acts)
    line, headers, body = _split(m.data)
    assert line == b"PUT /p HTTP/1.1" and body == b""
    assert b"content-length" not in headers and b"transfer-encoding" not in headers
    assert headers[b"host"] == b"127.0.0.1"  # the target's host, no port (url.Hostname())


def test_a_chunked_body_is_mirrored_with_its_length() -> None:
    acts = _feed(_proxy(TARGET), b"POST /c HTTP/1.1\r\nHost: a.test\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    (m,) = _mirrors(acts)
    _, headers, body = _split(m.data)
    assert body == b"abcde" and headers[b"content-length"] == b"5"
    assert b"transfer-encoding" not in headers


def test_a_get_is_mirrored_without_body_and_the_client_answer_is_unchanged() -> None:
    req = b"GET /g?x=%20 HTTP/1.1\r\nHost: a.test\r\n\r\n"
    mirrored = _feed(_proxy(TARGET), req, answer=OK)
    plain = _feed(_proxy({}), req, answer=OK)
    (m,) = _mirrors(mirrored)
    line, headers, _ = _split(m.data)
    assert line == b"GET /g?x=%20 HTTP/1.1" and b"content-length" not in headers

    def down(acts: list[Any]) -> bytes:
        return b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    assert down(mirrored) == down(plain) and down(plain).startswith(b"HTTP/1.1 200 ")
    assert [type(a) for a in mirrored if not isinstance(a, Mirror)] == [type(a) for a in plain]


def test_unrouted_redirected_or_refused_requests_are_never_mirrored() -> None:
    # No rule for the host: the default backend's 404, no location, no mirror.
    assert _mirrors(_feed(_proxy(TARGET), b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")) == []
    # A redirect (rewrite phase) and a source range's 403 (access phase) come before nginx's
    # precontent phase, where the mirror subrequest is made.
    redirect = _proxy({**TARGET, P + "permanent-redirect": "https://b.test/"})
    acts = _feed(redirect, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert _mirrors(acts) == [] and b" 301 " in b"".join(
        a.data for a in acts if isinstance(a, SendDownstream))
    refused = _proxy({**TARGET, P + "whitelist-source-range": "10.0.0.0/8"})
    acts = _feed(refused, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert _mirrors(acts) == [] and b" 403 " in b"".join(
        a.data for a in acts if isinstance(a, SendDownstream))


def test_a_body_too_large_is_not_mirrored() -> None:
    acts = _feed(_proxy({**TARGET, P + "proxy-body-size": "4"}),
                 b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    assert _mirrors(acts) == []
    assert b" 413 " in b"".join(a.data for a in acts if isinstance(a, SendDownstream))


def test_a_canary_mirror_is_ignored_and_canary_traffic_takes_the_main_rules_mirror() -> None:
    canary = {P + "canary": "true", P + "canary-by-header": "x-canary",
              P + "mirror-target": "http://127.0.0.1:7777$request_uri"}
    # The main rule has no mirror: canary traffic is not mirrored.
    acts = _feed(_proxy({}, canary=canary),
                 b"GET /c HTTP/1.1\r\nHost: a.test\r\nX-Canary: always\r\n\r\n")
    (op,) = [a for a in acts if isinstance(a, OpenUpstream)]
    assert op.endpoint == ("127.0.0.2", 8081) and _mirrors(acts) == []
    # Said by ``check`` (as for every location option set on a canary).
    said = ingresslib.check(ingresslib.parse_manifests(_yaml({}, canary=canary)))
    assert [(d.object, d.field) for d in said] == [
        ("Ingress default/web-canary", f"metadata.annotations[{P}mirror-target]")]
    assert "ignored on a canary Ingress" in said[0].message
    # The main rule's mirror applies to canary traffic too (one location in ingress-nginx).
    acts = _feed(_proxy(TARGET, canary=canary),
                 b"GET /c HTTP/1.1\r\nHost: a.test\r\nX-Canary: always\r\n\r\n")
    (m,) = _mirrors(acts)
    assert m.endpoint == ("127.0.0.1", 9999)


def test_nothing_the_client_sends_chooses_where_the_mirror_goes() -> None:
    proxy = _proxy(TARGET)
    for req in (b"GET //evil.test:81/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
                b"GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
                b"GET /x HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Host: evil.test\r\n"
                b"Forwarded: for=1;host=evil.test\r\n\r\n"):
        (m,) = _mirrors(_feed(proxy, req))
        assert (m.endpoint, m.tls) == (("127.0.0.1", 9999), False)
        _, headers, _ = _split(m.data)
        assert headers[b"host"] == b"127.0.0.1"


def test_one_mirror_per_request_on_a_keep_alive_connection() -> None:
    proxy = _proxy(TARGET)
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    conn.start(0.0)
    seen = []
    for path in (b"/1", b"/2"):
        acts = conn.receive_data(b"GET %s HTTP/1.1\r\nHost: a.test\r\n\r\n" % path, 0.0)
        (op,) = [a for a in acts if isinstance(a, OpenUpstream)]
        acts += conn.upstream_connected(op.conn_id, 0.0) + conn.upstream_data(op.conn_id, OK, 0.0)
        seen += [_split(m.data)[0] for m in _mirrors(acts)]
    assert seen == [b"GET /1 HTTP/1.1", b"GET /2 HTTP/1.1"]


# -- end to end: ProxyServer, a backend and a mirror on 127.0.0.1 ------------------------------


class _Http:
    """A tiny HTTP server on 127.0.0.1: records each request (head and Content-Length body)
    and answers ``answer`` (None: never answers)."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.got: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> _Http:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await r.readexactly(length) if length else b""
                self.got.append(head + body)
                if self.answer is None:
                    await asyncio.sleep(30)
                w.write(self.answer)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()


async def _ask(port: int, data: bytes, n: int = 1) -> tuple[list[bytes], float]:
    """``n`` answers to ``data`` sent ``n`` times on one keep-alive connection, and the time."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    out = []
    try:
        for _ in range(n):
            w.write(data)
            head = await r.readuntil(b"\r\n\r\n")
            length = [int(x.split(b":")[1]) for x in head.split(b"\r\n")
                      if x.lower().startswith(b"content-length:")][0]
            out.append(head.split(b"\r\n")[0] + b" " + await r.readexactly(length))
    finally:
        w.close()
    return out, time.monotonic() - t0


def _e2e(mirror_answer: bytes | None, mirror_up: bool = True,
         extra: dict[str, str] | None = None) -> tuple[list[bytes], float, list[bytes]]:
    async def run() -> tuple[list[bytes], float, list[bytes]]:
        backend = await _Http(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmain").start()
        mirror = await _Http(mirror_answer).start()
        mirror_port = mirror.port
        if not mirror_up:
            await mirror.stop()
        ann = {P + "mirror-target": f"http://127.0.0.1:{mirror_port}$request_uri",
               P + "mirror-host": "shadow.test", **(extra or {})}
        router = ingresslib.Router(ingresslib.parse_manifests(_yaml(ann, port=backend.port)),
                                   seed=0)
        server = ProxyServer(router)
        await server.start(("127.0.0.1", 0))
        try:
            # (A hang guard only: a client held by its mirror would wait 30 s, the mirror's
            # read timeout.)
            async with asyncio.timeout(10):
                answers, took = await _ask(
                    server.addresses[0][2],
                    b"POST /m?k=v HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc",
                    n=2)
            for _ in range(200):
                # Every mirror request done (sent, or failed and logged), or, for a mirror that
                # never answers, received by it.
                if (not server.mirrors) if mirror_answer is not None or not mirror_up \
                        else len(mirror.got) >= 2:
                    break
                await asyncio.sleep(0.01)
            return answers, took, list(mirror.got)
        finally:
            await server.shutdown(0.5)
            await backend.stop()
            if mirror_up:
                await mirror.stop()
    return asyncio.run(run())


def test_end_to_end_the_mirror_gets_the_copy_and_the_client_the_backends_answer() -> None:
    answers, _, got = _e2e(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nfail")
    assert answers == [b"HTTP/1.1 200 OK main"] * 2
    assert len(got) == 2
    line, headers, body = _split(got[0])
    assert line == b"POST /m?k=v HTTP/1.1" and headers[b"host"] == b"shadow.test"
    assert body == b"abc" and headers[b"content-length"] == b"3"


def test_end_to_end_a_mirror_that_is_down_or_never_answers_changes_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ingresslib.server")
    answers, _, _ = _e2e(None, mirror_up=False)
    assert answers == [b"HTTP/1.1 200 OK main"] * 2
    warned = [r for r in caplog.records if "mirror to 127.0.0.1" in r.getMessage()]
    # Once as a warning, then at debug level (no noise per request).
    assert [r.levelno for r in warned] == [logging.WARNING, logging.DEBUG]
    # A mirror that accepts and never answers: the keep-alive client's second request is not
    # held by it (nginx would wait for the subrequest: README divergence).
    answers, _, got = _e2e(None, extra={P + "proxy-read-timeout": "30"})
    assert answers == [b"HTTP/1.1 200 OK main"] * 2
    # Both copies reached the mirror, which answered neither.
    assert [_split(g)[0] for g in got] == [b"POST /m?k=v HTTP/1.1"] * 2


def test_the_mirror_module_is_core_it_imports_no_io_module() -> None:
    # As tests/test_proxy_connection.py's test_the_core_imports_no_io_module checks the
    # core's other modules (_mirror is imported by _annotations, _actions and _connection).
    import ast
    from pathlib import Path

    import ingresslib.proxy as pkg
    tree = ast.parse((Path(pkg.__file__).parent / "_mirror.py").read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add("." * node.level + (node.module or ""))
    # (typing: ``._proxy_ssl``'s UpstreamTLS for a type only, session 27; both are core)
    assert mods <= {"__future__", "re", "collections.abc", "dataclasses", "typing",
                    "._headers", "._proxy_ssl", ".._goparse"}, mods


# -- IngressASGI: a mounted Service's app gets the copy ---------------------------------------


def _asgi_call(ann: dict[str, str], backends: dict[str, Any], body: bytes,
               method: str = "POST") -> list[dict[str, Any]]:
    from ingresslib import IngressASGI
    from ingresslib import _asgi_mirror

    app = IngressASGI(ingresslib.parse_manifests(_yaml(ann)), backends=backends)
    sent: list[dict[str, Any]] = []
    headers = [(b"host", b"a.test")]
    if body:
        headers.append((b"content-length", b"%d" % len(body)))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": "/x", "raw_path": b"/x",
             "query_string": b"q=1", "root_path": "", "headers": headers,
             "client": ("192.0.2.7", 5000), "server": ("127.0.0.1", 80)}

    async def run() -> None:
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        for _ in range(100):
            if not _asgi_mirror._TASKS:
                break
            await asyncio.sleep(0.01)
    asyncio.run(run())
    return sent


def _echo(got: list[Any], status: int = 200) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        got.append((scope, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"main"})
    return app


def test_asgi_a_mounted_mirror_service_gets_the_copy_and_the_client_the_apps_answer() -> None:
    web: list[Any] = []
    shadow: list[Any] = []
    sent = _asgi_call({P + "mirror-target":
                       "http://shadow.default.svc.cluster.local$request_uri",
                       P + "mirror-host": "shadow.test"},
                      {"default/web:80": _echo(web), "default/shadow:80": _echo(shadow, 500)},
                      b"abc")
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]
    assert web[0][1] == b"abc" and web[0][0]["path"] == "/x"
    (scope, body), = shadow
    assert body == b"abc" and scope["method"] == "POST"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/x", b"/x", b"q=1")
    headers = dict(scope["headers"])
    assert headers[b"host"] == b"shadow.test" and headers[b"content-length"] == b"3"


def test_asgi_a_mirror_that_is_no_mounted_service_is_warned_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ingresslib.asgi")
    web: list[Any] = []
    ann = {P + "mirror-target": "http://elsewhere.test:8080$request_uri"}
    for _ in range(2):
        sent = _asgi_call(ann, {"default/web:80": _echo(web)}, b"", method="GET")
        assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]
    said = [r.getMessage() for r in caplog.records if "elsewhere.test" in r.getMessage()]
    assert len(said) == 1 and "not mirrored" in said[0]


def test_a_path_without_variable_takes_the_arguments_after_rewrite_and_https_is_tls() -> None:
    acts = _feed(_proxy({P + "mirror-target": "https://m.test/shadow",
                         P + "rewrite-target": "/new?r=1"}),
                 b"GET /old?x=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    (m,) = _mirrors(acts)
    assert (m.endpoint, m.tls) == (("m.test", 443), True)
    line, headers, _ = _split(m.data)
    # nginx: proxy_pass without a variable appends the (rewritten) request's arguments.
    assert line == b"GET /shadow?r=1&x=1 HTTP/1.1" and headers[b"host"] == b"m.test"
    up = b"".join(a.data for a in acts if isinstance(a, SendUpstream))
    assert up.startswith(b"GET /new?r=1&x=1 HTTP/1.1\r\n")


def test_a_body_read_while_basic_auth_hashed_off_the_loop_is_mirrored_whole() -> None:
    import base64

    from ingresslib.proxy import Offload
    from ingresslib.proxy._htpasswd import sha_crypt
    hashed = sha_crypt(b"pw", "$6$mirror26$") or ""
    auth = base64.b64encode(f"u:{hashed}\n".encode()).decode()
    secret = ("\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: users}\n"
              f"type: Opaque\ndata: {{auth: {auth}}}\n")
    res = ingresslib.parse_manifests(_yaml({**TARGET, P + "auth-type": "basic",
                                            P + "auth-secret": "users"}) + secret)
    proxy = Proxy(ingresslib.Router(res, seed=0), request_id=lambda: "rid", clock=None)
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0, offload=True)
    acts = conn.start(0.0) + conn.receive_data(
        b"POST /b HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nAuthorization: Basic "
        + base64.b64encode(b"u:pw") + b"\r\n\r\nbody", 0.0)
    (job,) = [a for a in acts if isinstance(a, Offload)]
    assert _mirrors(acts) == []
    job.job()
    (m,) = _mirrors(conn.offload_done(0.0))
    _, headers, body = _split(m.data)
    assert body == b"body" and b"authorization" not in headers


def test_a_body_over_the_copy_bound_is_proxied_but_not_mirrored(monkeypatch: Any) -> None:
    from ingresslib.proxy import _mirror
    monkeypatch.setattr(_mirror, "MIRROR_BODY_LIMIT", 4)
    acts = _feed(_proxy({**TARGET, P + "proxy-body-size": "0"}),
                 b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\nabcdef")
    assert _mirrors(acts) == []
    assert b"".join(a.data for a in acts if isinstance(a, SendUpstream)).endswith(b"abcdef")
    acts = _feed(_proxy({**TARGET, P + "proxy-body-size": "0"}),
                 b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nabcd")
    assert _split(_mirrors(acts)[0].data)[2] == b"abcd"
