"""Session 29 review (R8) of the ConfigMap keys ``server-tokens``, ``allow-backend-server-header``
and ``service-upstream`` (the router's default), and of IngressASGI's ``hiding_send``.

Expected values come from ingress-nginx: rootfs/etc/nginx/template/nginx.tmpl's http block
(``more_set_headers`` of add-headers, then ``server_tokens`` and ``more_clear_headers Server``
unless server-tokens, ``proxy_pass_header Server`` with allow-backend-server-header);
headers-more's ``ngx_http_headers_more_filter`` (one location's commands run in order, the
http block's first: ``ngx_http_headers_more_merge_loc_conf``); annotations/serviceupstream
``Parse`` (a missing annotation: ``defBackend.ServiceUpstream``, the ConfigMap's key).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import given, settings, strategies as st

import ingresslib
import ingresslib as _il
from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._header_sets import hiding_send, server_send

from _budget import examples
from _proxy_harness import FakeUpstream, ProxyPair, Reply, ingress_yaml


# --- service-upstream through serve ------------------------------------------------------------

class _Named(http.server.BaseHTTPRequestHandler):
    """Answers 200 with the server's ``name`` as the body."""

    name = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's spelling
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.name)))
        self.end_headers()
        self.wfile.write(self.name)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[tuple[int, int]]:
    """Two HTTP servers on 127.0.0.1: (the Service's "ClusterIP" port answering ``svc``, the
    pod's port answering ``pod``)."""
    servers = []
    for name in (b"svc", b"pod"):
        handler = type("H", (_Named,), {"name": name})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        servers.append(srv)
    try:
        yield servers[0].server_address[1], servers[1].server_address[1]
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()


def _service_manifests(svc_port: int, pod_port: int, annotation: str | None = None) -> str:
    """Ingress a.test -> Service web (ClusterIP 127.0.0.1 at ``svc_port``, targetPort
    ``pod_port``) and its one ready pod 127.0.0.1:``pod_port``: no address off 127.0.0.1."""
    ann = "" if annotation is None else \
        f"\n  annotations: {{nginx.ingress.kubernetes.io/service-upstream: {annotation!r}}}"
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: a
  namespace: default{ann}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: web, port: {{number: {svc_port}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{clusterIP: 127.0.0.1, ports: [{{port: {svc_port}, targetPort: {pod_port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: {pod_port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


def _configmap(data: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "c", "namespace": "default"}, "data": data})


async def _get_body(port: int, host: str) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
        await w.drain()
        data = await asyncio.wait_for(r.read(), 2)
    finally:
        w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b" ", 2)[1] + b" " + body


def test_serve_service_upstream_from_the_configmap_and_its_reload_in_one_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backends: tuple[int, int]) -> None:
    from ingresslib import _router
    from ingresslib._cli import main
    from ingresslib._serve_reload import Reloader

    svc_port, pod_port = backends
    m = tmp_path / "m.yaml"
    m.write_text(_service_manifests(svc_port, pod_port))
    cm = tmp_path / "cm.json"
    cm.write_text(_configmap({"service-upstream": "true"}))
    seen: list[Any] = []
    builds: list[int] = []
    real_build = _router.Router._build

    def counting_build(self: Any, *a: Any, **k: Any) -> Any:
        builds.append(1)
        return real_build(self, *a, **k)

    async def run(self: Reloader) -> None:
        try:
            port = self.server.addresses[0][2]
            seen.append(await _get_body(port, "a.test"))
            cm.write_text(_configmap({"service-upstream": "false",
                                      "load-balance": "ewma"}))
            builds.clear()
            seen.append(await self.check(force=True))
            seen.append(len(builds))
            seen.append(self.server.router.load_balance)
            seen.append(await _get_body(port, "a.test"))
            cm.write_text(_configmap({"service-upstream": "true"}))
            builds.clear()
            seen.append(await self.check(force=True))
            seen.append(len(builds))
            seen.append(await _get_body(port, "a.test"))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_router.Router, "_build", counting_build)
    monkeypatch.setattr(Reloader, "run", run)
    assert main(["serve", "-f", str(m), "--config", str(cm), "--listen", "127.0.0.1:0",
                 "--access-log", "off", "--reload-interval", "0"]) == 0
    # the ConfigMap's true: the Service's ClusterIP:port; its reload to false: the pod again,
    # in one build (load-balance changed with it); back to true: one build too
    assert seen == [b"200 svc", True, 1, "ewma", b"200 pod", True, 1, b"200 svc"]


# --- the Server header: core and IngressASGI over the combinations ----------------------------

P = "nginx.ingress.kubernetes.io/"
TOKEN = b"ingresslib/" + ingresslib.__version__.encode()
ERR = ("10.9.0.1", 9090)
#: The error page's backend (custom-http-errors' default-backend) sends its own Server.
ERR_SERVER = [b"errors/1"]
INTERCEPT = {P + "default-backend": "errors", P + "custom-http-errors": "503"}
ADD_HEADERS_CM = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: global, namespace: ingress}
data: {"Server": "mine", "X-Site": "main"}
"""


def _svc(name: str, port: int, target: int, address: str) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: {target}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {target}}}]
endpoints: [{{addresses: [{address}], conditions: {{ready: true}}}}]
"""


def _header_docs(intercept: bool) -> str:
    return (ingress_yaml("site", "a.test", INTERCEPT if intercept else {})
            + _svc("web", 80, 80, "10.0.0.1") + _svc("errors", 8081, 9090, "10.9.0.1")
            + ADD_HEADERS_CM)


#: What the client does: (method, host, upgrade, the upstream's status).
KINDS = {"get": ("GET", "a.test", False, 200), "head": ("HEAD", "a.test", False, 200),
         "304": ("GET", "a.test", False, 304), "intercept": ("GET", "a.test", False, 503),
         "unrouted": ("GET", "nobody.test", False, 200), "101": ("GET", "a.test", True, 101)}


def _settings(tokens: bool, allow: bool, hide: bool, add: bool) -> ProxySettings:
    return ProxySettings(server_tokens=tokens, allow_backend_server_header=allow,
                         hide_headers=("Server",) if hide else (),
                         add_headers="ingress/global" if add else "")


def _core_servers(s: ProxySettings, kind: str, upstream: list[bytes]) -> tuple[int, list[bytes]]:
    method, host, upgrade, status = KINDS[kind]

    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply:
        lines = b"".join(b"Server: " + v + b"\r\n"
                         for v in (ERR_SERVER if up.endpoint == ERR else upstream))
        if up.endpoint == ERR:
            return Reply(b"HTTP/1.1 418 Teapot\r\n" + lines + b"Content-Length: 4\r\n\r\npage")
        if status == 101:
            return Reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n" + lines + b"\r\n")
        if status == 304:
            return Reply(b"HTTP/1.1 304 Not Modified\r\n" + lines + b"\r\n")
        body = b"" if method == "HEAD" else b"ok"
        return Reply(b"HTTP/1.1 %d X\r\n" % status + lines + b"Content-Length: 2\r\n\r\n"
                     + body)

    pair = ProxyPair(router=Router(parse_manifests(_header_docs(kind == "intercept"))),
                     settings=s, app=app)
    req = (f"{method} /x HTTP/1.1\r\nHost: {host}\r\n".encode()
           + (b"Upgrade: websocket\r\nConnection: Upgrade\r\n" if upgrade else b"") + b"\r\n")
    out = pair.send(req)
    head = out.split(b"\r\n\r\n")[0].split(b"\r\n")
    found = [line.partition(b":")[2].strip() for line in head[1:]
             if line.partition(b":")[0].strip().lower() == b"server"]
    return int(head[0].split(b" ")[1]), found


def _asgi_servers(s: ProxySettings, kind: str, upstream: list[bytes]
                  ) -> tuple[int, list[bytes]]:
    method, host, upgrade, status = KINDS[kind]
    named = [(b"server", v) for v in upstream]

    async def web(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if upgrade:
            await send({"type": "websocket.accept", "headers": named})
            await send({"type": "websocket.close", "code": 1000})
            return
        framing = [] if status == 304 else [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": status,
                    "headers": [*named, *framing]})
        await send({"type": "http.response.body",
                    "body": b"" if status == 304 or method == "HEAD" else b"ok"})

    async def errors(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 418,
                    "headers": [*((b"server", v) for v in ERR_SERVER),
                                (b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"page"})

    asgi = IngressASGI(Router(parse_manifests(_header_docs(kind == "intercept"))),
                       backends={"default/web": web, "default/errors": errors}, settings=s)
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        if upgrade:
            return {"type": "websocket.connect"}
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: dict[str, Any] = {
        "asgi": {"version": "3.0"}, "http_version": "1.1", "path": "/x", "raw_path": b"/x",
        "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
        "server": ("127.0.0.1", 80), "headers": [(b"host", host.encode())]}
    if upgrade:
        scope.update(type="websocket", scheme="ws", subprotocols=[])
    else:
        scope.update(type="http", scheme="http", method=method)
    asyncio.run(asgi(scope, receive, send))
    start = sent[0]
    got = 101 if start["type"] == "websocket.accept" else start["status"]
    return got, [bytes(v) for n, v in start.get("headers") or ()
                 if (n.encode("latin-1") if isinstance(n, str) else bytes(n)).lower()
                 == b"server"]


def _nginx(tokens: bool, allow: bool, hide: bool, add: bool, kind: str,
           upstream: list[bytes]) -> list[bytes]:
    """The Server values ingress-nginx sends (ingresslib's token for nginx/<version>)."""
    if not tokens:
        return []  # more_clear_headers Server: the upstream's, add-headers' and its own
    if add:
        return [b"mine"]  # more_set_headers "Server: mine" replaces whatever is there
    if kind == "unrouted":
        passed = []
    else:
        passed = ERR_SERVER if kind == "intercept" else upstream
    if allow and passed:
        # proxy_pass_header Server, also over proxy_hide_header Server: nginx's
        # ngx_http_upstream_hide_headers_hash takes pass_headers out of the hidden names
        return list(passed)
    return [TOKEN]  # ngx_http_header_filter: "if (r->headers_out.server == NULL)"


_UPSTREAMS = st.sampled_from([[], [b"backend/1"], [b"b1", b"b2"], [b""]])


@settings(max_examples=examples(0.5), deadline=None)
@given(tokens=st.booleans(), allow=st.booleans(), hide=st.booleans(), add=st.booleans(),
       kind=st.sampled_from(sorted(KINDS)), upstream=_UPSTREAMS)
def test_server_header_core_asgi_and_nginx_agree(tokens: bool, allow: bool, hide: bool,
                                                 add: bool, kind: str,
                                                 upstream: list[bytes]) -> None:
    s = _settings(tokens, allow, hide, add)
    expected = _nginx(tokens, allow, hide, add, kind, upstream)
    status = {"unrouted": 404, "intercept": 418}.get(kind, KINDS[kind][3])
    assert _core_servers(s, kind, upstream) == (status, expected)
    assert _asgi_servers(s, kind, upstream) == (status, expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_add_headers_server_is_cleared_without_server_tokens(kind: str) -> None:
    # nginx.tmpl's http block: more_set_headers "Server: mine" (add-headers), then
    # more_clear_headers Server (server-tokens off); headers-more runs them in that order
    s = _settings(False, False, False, True)
    assert _core_servers(s, kind, [b"backend/1"])[1] == []
    assert _asgi_servers(s, kind, [b"backend/1"])[1] == []
    # its other headers stay
    on = _settings(True, False, False, True)
    assert _core_servers(on, kind, [])[1] == [b"mine"]
    assert _asgi_servers(on, kind, [])[1] == [b"mine"]


# --- hiding_send / server_send: the app's header names -----------------------------------------

def _through(wrap: Any, headers: Any) -> list[Any]:
    got: list[Any] = []

    async def send(m: Any) -> None:
        got.append(m)

    asyncio.run(wrap(send)({"type": "http.response.start", "status": 200, "headers": headers}))
    return got[0]["headers"]


@pytest.mark.parametrize("wrap", [lambda send: hiding_send(send, frozenset({b"x-a"})),
                                  lambda send: server_send(send, TOKEN)],
                         ids=["hiding_send", "server_send"])
def test_a_str_name_that_is_not_latin1_is_a_clear_type_error(wrap: Any) -> None:
    # Before: UnicodeEncodeError("'latin-1' codec can't encode character...") from deep inside
    with pytest.raises(TypeError, match="ASGI response header name 'x-\u2603' is not a byte "
                       r"string \(a str name is read as latin-1, and this one is not latin-1\)"):
        _through(wrap, [(b"content-length", b"0"), ("x-\u2603", "1")])


def test_byte_string_names_of_every_kind_are_read_and_handed_on_as_given() -> None:
    # bytearray and memoryview are byte strings (as _asgi_reply._name and _gzip._b read them)
    names = [bytearray(b"X-A"), memoryview(b"x-a"), "X-a", b"x-A", bytearray(b"x-b")]
    kept = _through(lambda send: hiding_send(send, frozenset({b"x-a"})),
                    [(n, b"1") for n in names])
    assert kept == [(names[4], b"1")] and kept[0][0] is names[4]
    # server_send: a memoryview/bytearray/str "Server" counts as the app's (no token added)
    for name in (memoryview(b"Server"), bytearray(b"server"), "SERVER"):
        assert _through(lambda send: server_send(send, TOKEN), [(name, b"app/1")]) == \
            [(name, b"app/1")]
    assert _through(lambda send: server_send(send, TOKEN), [("x-b", b"1")]) == \
        [(b"server", TOKEN), ("x-b", b"1")]


def test_server_send_reads_a_one_pass_iterable_once() -> None:
    headers = [(b"x-a", b"1"), (b"x-b", b"2")]
    assert _through(lambda send: server_send(send, TOKEN), iter(headers)) == \
        [(b"server", TOKEN), *headers]
    app_server = [(b"x-a", b"1"), (b"server", b"app/1"), (b"x-b", b"2")]
    # before: any() stopped at the app's Server and the rest was handed on, half read
    assert _through(lambda send: server_send(send, TOKEN), iter(app_server)) == app_server


# --- explain and check: the ConfigMap's service-upstream, the annotation as the Router reads it

WEB = _service_manifests(80, 8080)


@pytest.mark.parametrize("default,annotation", [(True, None), (False, "1"), (False, "True"),
                                                (True, " true"), (False, " true"),
                                                (True, "false"), (False, None)])
def test_explain_picks_the_routers_endpoint(default: bool, annotation: str | None) -> None:
    res = parse_manifests(_service_manifests(80, 8080, annotation))
    d = Router(res, service_upstream=default).route("GET", "a.test", "/")
    assert d is not None and d.endpoint is not None
    # (the keyword only when True: the annotation's reading is checked on its own)
    doc = _il.explain(res, "http://a.test/", **({"service_upstream": True} if default else {}))
    assert doc["decision"]["endpoint"] == f"{d.endpoint[0]}:{d.endpoint[1]}"
    # an annotation Go's ParseBool reads as true, the default only without one
    on = annotation in ("1", "True") or (annotation is None and default)
    assert d.endpoint == (("127.0.0.1", 80) if on else ("127.0.0.1", 8080))


def test_explain_and_check_cli_read_the_configmaps_service_upstream(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ingresslib._cli import main

    m = tmp_path / "m.yaml"
    m.write_text(WEB)
    cm = tmp_path / "cm.json"
    cm.write_text(_configmap({"service-upstream": "true"}))
    assert main(["explain", "-f", str(m), "--config", str(cm), "-o", "json",
                 "http://a.test/"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["decision"]["endpoint"] == "127.0.0.1:80"  # serve's: the ClusterIP
    assert main(["explain", "-f", str(m), "-o", "json", "http://a.test/"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"]["endpoint"] == "127.0.0.1:8080"


def _no_ready_pod(annotations: dict[str, str]) -> str:
    """Ingress a.test -> Service web (a ClusterIP, no ready pod), default-backend errors (one
    ready pod)."""
    return (ingress_yaml("site", "a.test", {P + "default-backend": "errors", **annotations})
            + """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 80}]}
""" + _svc("errors", 8081, 9090, "10.9.0.1"))


def _default_backend_notes(diagnostics: list[Any]) -> list[str]:
    return [d.message for d in diagnostics
            if "default-backend Service default/errors serves its requests" in d.message]


@pytest.mark.parametrize("default,annotations,served_by_errors", [
    (False, {}, True), (True, {}, False), (False, {P + "service-upstream": "1"}, False),
    (False, {P + "service-upstream": "T"}, False), (True, {P + "service-upstream": "no"}, True),
    (True, {P + "service-upstream": "false"}, True)])
def test_check_says_what_the_router_does_of_a_rule_without_ready_pod(
        default: bool, annotations: dict[str, str], served_by_errors: bool) -> None:
    # With service-upstream the rule's Service is its ClusterIP: it serves, no default-backend
    # note; before, check read "1"/"T" as false and never took the ConfigMap's default
    res = parse_manifests(_no_ready_pod(annotations))
    d = Router(res, service_upstream=default).route("GET", "a.test", "/")
    assert d is not None
    assert (d.endpoint == ("10.9.0.1", 9090)) is served_by_errors
    notes = _default_backend_notes(_il.check(res, **({"service_upstream": True}
                                                      if default else {})))
    assert bool(notes) is served_by_errors, notes


def test_explain_and_check_refuse_a_service_upstream_that_is_no_bool() -> None:
    res = parse_manifests(WEB)
    with pytest.raises(TypeError, match="service_upstream must be True or False"):
        _il.explain(res, "http://a.test/", service_upstream="true")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="service_upstream must be True or False"):
        _il.check(res, service_upstream=1)  # type: ignore[arg-type]


def test_check_cli_reads_the_configmaps_service_upstream(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ingresslib._cli import main

    m = tmp_path / "m.yaml"
    m.write_text(_no_ready_pod({}))
    assert main(["check", "-f", str(m), "-o", "json"]) == 0
    assert _default_backend_notes_text(capsys.readouterr().out)
    cm = tmp_path / "cm.json"
    cm.write_text(_configmap({"service-upstream": "true"}))
    assert main(["check", "-f", str(m), "--config", str(cm), "-o", "json"]) == 0
    assert not _default_backend_notes_text(capsys.readouterr().out)


def _default_backend_notes_text(out: str) -> list[str]:
    return [line for line in json.loads(out)["diagnostics"]
            if "default-backend Service default/errors serves its requests" in line]


# --- a settings change (serve's ConfigMap reload) toggling server-tokens --------------------------

OFF, ON = ProxySettings(), ProxySettings(server_tokens=True)


def _servers_of(out: bytes) -> list[bytes]:
    return [line.partition(b":")[2].strip() for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")
            if line.partition(b":")[0].strip().lower() == b"server"]


@pytest.mark.parametrize("before,after", [(OFF, ON), (ON, OFF)])
def test_core_in_flight_answer_keeps_its_settings_a_new_connection_follows(
        before: ProxySettings, after: ProxySettings) -> None:
    app = lambda req, body, up: Reply(  # noqa: E731
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    p = ProxyPair(router=Router(parse_manifests(_header_docs(False))), settings=before,
                  app=app, defer={("10.0.0.1", 80)})
    assert p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n") == b""  # connecting upstream
    p.proxy.settings = after  # serve's reload, on the loop
    old = [TOKEN] if before.server_tokens else []
    new = [TOKEN] if after.server_tokens else []
    assert _servers_of(p.connect()) == old
    p.conn = p.proxy.connection(("203.0.113.7", 40001), local_port=80, now=p.now)
    p.send(b"GET /x HTTP/1.1\r\nHost: nobody.test\r\n\r\n")
    assert _servers_of(bytes(p.received).rsplit(b"HTTP/1.1 ", 1)[1]) == new


@pytest.mark.parametrize("before,after", [(OFF, ON), (ON, OFF)])
def test_asgi_in_flight_answer_keeps_its_settings_later_requests_follow(
        before: ProxySettings, after: ProxySettings) -> None:
    async def main() -> list[list[bytes]]:
        go, entered = asyncio.Event(), asyncio.Event()

        async def web(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            if scope["path"] == "/slow":
                entered.set()
                await go.wait()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

        asgi = IngressASGI(Router(parse_manifests(_header_docs(False))),
                           backends={"default/web": web}, settings=before)

        async def one(path: str) -> list[bytes]:
            sent: list[dict[str, Any]] = []

            async def send(m: Any) -> None:
                sent.append(dict(m))

            async def receive() -> Any:
                return {"type": "http.request", "body": b"", "more_body": False}

            await asgi({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                        "method": "GET", "scheme": "http", "path": path,
                        "raw_path": path.encode(), "root_path": "", "query_string": b"",
                        "client": ("10.1.1.1", 5000), "server": ("127.0.0.1", 80),
                        "headers": [(b"host", b"a.test")]}, receive, send)
            return [bytes(v) for n, v in sent[0]["headers"] if bytes(n).lower() == b"server"]

        slow = asyncio.ensure_future(one("/slow"))
        await entered.wait()  # the app has the request: in flight
        asgi.settings = after
        later = await one("/x")
        go.set()
        return [await slow, later]

    old = [TOKEN] if before.server_tokens else []
    new = [TOKEN] if after.server_tokens else []
    assert asyncio.run(main()) == [old, new]


def test_global_headers_without_server_tokens_follow_a_configmap_change() -> None:
    from ingresslib.proxy._header_sets import global_headers

    router = Router(parse_manifests(_header_docs(False)))
    for _ in range(2):  # (the second answer: the one kept for the same pairs)
        assert global_headers("ingress/global", router, server_tokens=False) == \
            ((b"X-Site", b"main"),)
    assert global_headers("ingress/global", router, server_tokens=True) == \
        ((b"Server", b"mine"), (b"X-Site", b"main"))
    router.update(parse_manifests(_header_docs(False).replace(
        '{"Server": "mine", "X-Site": "main"}', '{"server": "x", "X-Other": "1"}')))
    assert global_headers("ingress/global", router, server_tokens=False) == \
        ((b"X-Other", b"1"),)
    assert global_headers("", router, server_tokens=False) == ()


def test_a_custom_headers_server_stays_either_way() -> None:
    # custom-headers is the location's own more_set_headers: headers-more runs it after the
    # http block's more_clear_headers Server (merge_loc_conf puts the parent's first)
    cm = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: extra, namespace: default}
data: {"Server": "custom"}
"""
    docs = (ingress_yaml("site", "a.test", {P + "custom-headers": "default/extra"})
            + _svc("web", 80, 80, "10.0.0.1") + cm)
    for tokens in (False, True):
        s = ProxySettings(global_allowed_response_headers=("Server",), server_tokens=tokens)
        p = ProxyPair(router=Router(parse_manifests(docs)), settings=s,
                      app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nServer: b\r\n"
                                                b"Content-Length: 2\r\n\r\nok"))
        assert _servers_of(p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")) == [b"custom"]

        async def web(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"server", b"b"), (b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

        asgi = IngressASGI(Router(parse_manifests(docs)), backends={"default/web": web},
                           settings=s)
        sent: list[dict[str, Any]] = []

        async def send(m: Any) -> None:
            sent.append(dict(m))

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        asyncio.run(asgi({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                          "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
                          "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
                          "server": ("127.0.0.1", 80), "headers": [(b"host", b"a.test")]},
                         receive, send))
        assert [bytes(v) for n, v in sent[0]["headers"] if bytes(n).lower() == b"server"] \
            == [b"custom"]


def test_add_headers_without_server_tokens_filter_once_per_configmap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # rule 19: the Server entry is left out once per add-headers tuple, not per answer
    from ingresslib.proxy import _header_sets

    calls: list[int] = []
    real = _header_sets._server_cleared

    def counting(pairs: Any) -> Any:
        calls.append(1)
        return real(pairs)

    monkeypatch.setattr(_header_sets, "_server_cleared", counting)
    monkeypatch.setattr(_header_sets, "_cleared", (None, ()))
    s = _settings(False, False, False, True)
    p = ProxyPair(router=Router(parse_manifests(_header_docs(False))), settings=s,
                  app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    for _ in range(5):
        out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert b"X-Site: main" in out and _servers_of(out) == []
    assert calls == [1]


def test_a_reload_whose_build_fails_keeps_both_defaults_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingresslib import _router
    from ingresslib._config import load_config
    from ingresslib._load import load_manifests
    from ingresslib._serve_reload import Reloader
    from ingresslib.proxy import ProxyServer

    m = tmp_path / "m.yaml"
    m.write_text(_service_manifests(80, 8080))
    cm = tmp_path / "cm.json"
    cm.write_text(_configmap({"service-upstream": "true"}))
    cfg = load_config(str(cm))
    router = Router(load_manifests(str(m)), service_upstream=cfg.service_upstream)
    loop = asyncio.new_event_loop()
    server = ProxyServer(router, cfg.settings, loop=loop)
    reloader = Reloader(server, [str(m)], ingress_class=None, controller=None, settle=0,
                        config=cfg, config_path=str(cm))
    cm.write_text(_configmap({"service-upstream": "false", "load-balance": "ewma"}))

    def failing(self: Any, *a: Any, **k: Any) -> Any:
        raise MemoryError("the build fails")

    try:
        monkeypatch.setattr(_router.Router, "_build", failing)
        assert loop.run_until_complete(reloader.check(force=True)) is False
        assert (router.service_upstream, router.load_balance) == (True, "round_robin")
        d = router.route("GET", "a.test", "/")
        assert d is not None and d.endpoint == ("127.0.0.1", 80)  # the last good table
        monkeypatch.undo()
        assert loop.run_until_complete(reloader.check(force=True)) is True
    finally:
        loop.close()
    assert (router.service_upstream, router.load_balance) == (False, "ewma")
    d = router.route("GET", "a.test", "/")
    assert d is not None and d.endpoint == ("127.0.0.1", 8080)


@pytest.mark.parametrize("tokens,allow,expected", [
    (False, False, []), (False, True, []), (True, False, [TOKEN]), (True, True, [b"b/1"])])
def test_a_refused_upgrade_core_and_asgi_agree(tokens: bool, allow: bool,
                                               expected: list[bytes]) -> None:
    # the backend answers the WebSocket handshake 403 (websocket.http.response.start)
    s = _settings(tokens, allow, False, False)
    p = ProxyPair(router=Router(parse_manifests(_header_docs(False))), settings=s,
                  app=lambda r, b, u: Reply(b"HTTP/1.1 403 No\r\nServer: b/1\r\n"
                                            b"Content-Length: 2\r\n\r\nno"))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 403 ") and _servers_of(out) == expected

    async def web(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403,
                    "headers": [(b"server", b"b/1"), (b"content-length", b"2")]})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    asgi = IngressASGI(Router(parse_manifests(_header_docs(False))),
                       backends={"default/web": web}, settings=s)
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    asyncio.run(asgi({"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"},
                      "extensions": {"websocket.http.response": {}}, "http_version": "1.1",
                      "scheme": "ws", "path": "/x", "raw_path": b"/x", "root_path": "",
                      "query_string": b"", "client": ("10.1.1.1", 5000),
                      "server": ("127.0.0.1", 80), "subprotocols": [],
                      "headers": [(b"host", b"a.test")]}, receive, send))
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 403
    assert [bytes(v) for n, v in sent[0]["headers"] if bytes(n).lower() == b"server"] == \
        expected
