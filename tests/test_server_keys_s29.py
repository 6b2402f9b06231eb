"""The ConfigMap keys ``server-tokens`` and ``allow-backend-server-header`` (proxy/_headers.py),
and IngressASGI's ``hiding_send`` with an app's ``str`` header names (proxy/_header_sets.py).

Expected values are written from ingress-nginx: internal/ingress/controller/config/config.go
(``ShowServerTokens bool `json:"server-tokens"```, default false; ``AllowBackendServerHeader bool
`json:"allow-backend-server-header"```, default false) and rootfs/etc/nginx/template/nginx.tmpl
(http block: ``server_tokens on|off;``, ``more_clear_headers Server;`` unless server-tokens,
``proxy_pass_header Server;`` with allow-backend-server-header). ``more_clear_headers Server``
clears the passed header too (kubernetes/ingress-nginx#6733): allow-backend-server-header alone
changes nothing. nginx's header filter writes its own Server only when none is there
(ngx_http_header_filter_module.c ``if (r->headers_out.server == NULL)``); ingresslib's is
``ingresslib/<version>``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ingresslib
from ingresslib import IngressASGI, Router, ValidationError, parse_manifests
from ingresslib._config import parse_config_data
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._header_sets import hiding_send

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml

GET = b"GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n"
TOKEN = b"ingresslib/" + ingresslib.__version__.encode()
#: The four combinations, as ProxySettings keyword arguments (built in each test).
DEFAULT: dict[str, Any] = {}
TOKENS: dict[str, Any] = {"server_tokens": True}
BOTH: dict[str, Any] = {"server_tokens": True, "allow_backend_server_header": True}
ALLOW: dict[str, Any] = {"allow_backend_server_header": True}
#: (settings, the Server values the client gets when the backend sends "backend/1", when it
#: sends none)
CASES = [(DEFAULT, [], []), (ALLOW, [], []), (TOKENS, [TOKEN], [TOKEN]),
         (BOTH, [b"backend/1"], [TOKEN])]


def servers(out: bytes) -> list[bytes]:
    """The Server header values of a response head, in order."""
    return [line.partition(b":")[2].strip()
            for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
            if line.partition(b":")[0].strip().lower() == b"server"]


def upstream(*lines: bytes, status: bytes = b"200 OK") -> Any:
    head = b"HTTP/1.1 " + status + b"\r\n" + b"".join(line + b"\r\n" for line in lines)
    return lambda req, body, up: Reply(head + b"Content-Length: 2\r\n\r\nok")


def pair(settings: dict[str, Any], app: Any = None) -> ProxyPair:
    docs = ingress_yaml("web", "example.test", {}) + WEB_SERVICE_YAML
    kw = {} if app is None else {"app": app}
    return ProxyPair(router=Router(parse_manifests(docs)), settings=ProxySettings(**settings),
                     **kw)


# --- the ConfigMap keys -----------------------------------------------------------------------

def test_keys_are_read_and_no_longer_warn_not_implemented() -> None:
    cfg = parse_config_data({"server-tokens": "true", "allow-backend-server-header": "true"})
    assert cfg.warnings == ()
    assert cfg.settings.server_tokens is True
    assert cfg.settings.allow_backend_server_header is True
    cfg = parse_config_data({"server-tokens": "false", "allow-backend-server-header": "0"})
    assert cfg.warnings == () and cfg.settings == ProxySettings()


@pytest.mark.parametrize("value,expected", [("1", True), ("t", True), ("TRUE", True),
                                            ("True", True), ("F", False), ("FALSE", False)])
def test_values_as_go_parse_bool(value: str, expected: bool) -> None:
    assert parse_config_data({"server-tokens": value}).settings.server_tokens is expected


@pytest.mark.parametrize("key", ["server-tokens", "allow-backend-server-header"])
@pytest.mark.parametrize("value", ["yes", " true", "", "on", "2"])
def test_bad_values_are_errors(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({key: value})
    assert f"data.{key}" in str(e.value)


def test_allow_backend_server_header_alone_warns_it_does_nothing() -> None:
    cfg = parse_config_data({"allow-backend-server-header": "true"})
    assert cfg.settings.allow_backend_server_header is True
    assert len(cfg.warnings) == 1
    assert "allow-backend-server-header: has no effect without server-tokens" in cfg.warnings[0]


def test_settings_take_bools_only() -> None:
    with pytest.raises(TypeError, match="server_tokens"):
        ProxySettings(server_tokens="true")  # type: ignore[arg-type]


# --- through the proxy core -------------------------------------------------------------------

@pytest.mark.parametrize("settings,with_backend,without", CASES)
def test_core_server_header(settings: dict[str, Any], with_backend: list[bytes],
                            without: list[bytes]) -> None:
    out = pair(settings, upstream(b"Server: backend/1")).send(GET)
    assert out.startswith(b"HTTP/1.1 200 ") and servers(out) == with_backend
    out = pair(settings, upstream()).send(GET)
    assert out.startswith(b"HTTP/1.1 200 ") and servers(out) == without


@pytest.mark.parametrize("settings,expected", [(DEFAULT, []), (ALLOW, []), (TOKENS, [TOKEN]),
                                               (BOTH, [TOKEN])])
def test_core_own_answers(settings: dict[str, Any], expected: list[bytes]) -> None:
    out = pair(settings).send(b"GET /x HTTP/1.1\r\nHost: nobody.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and servers(out) == expected
    # the token comes first, where nginx's header filter writes it; the body names nothing
    assert out.split(b"\r\n\r\n", 1)[1] == b"404 Not Found\n"
    if expected:
        assert out.split(b"\r\n")[1] == b"Server: " + TOKEN


def test_core_upstream_error_status_too() -> None:
    out = pair(BOTH, upstream(b"Server: backend/1", status=b"503 Busy")).send(GET)
    assert out.startswith(b"HTTP/1.1 503 ") and servers(out) == [b"backend/1"]


def test_core_switching_protocols() -> None:
    app = lambda req, body, up: Reply(  # noqa: E731
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Server: ws/1\r\n\r\n")
    req = (b"GET /x HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\n\r\n")
    for settings, expected in ((DEFAULT, []), (TOKENS, [TOKEN]), (BOTH, [b"ws/1"])):
        out = pair(settings, app).send(req)
        assert out.startswith(b"HTTP/1.1 101 ") and servers(out) == expected, settings


def test_core_hide_headers_cannot_hide_a_passed_server() -> None:
    # proxy_pass_header Server wins over proxy_hide_header Server (nginx's
    # ngx_http_upstream_hide_headers_hash takes pass_headers out of the hidden names: X2)
    s = {**BOTH, "hide_headers": ("Server",)}
    out = pair(s, upstream(b"Server: backend/1")).send(GET)
    assert servers(out) == [b"backend/1"]


# --- end to end through ProxyServer with a real backend ---------------------------------------

def _server_exchange(settings: dict[str, Any]) -> bytes:
    from ingresslib.proxy import ProxyServer

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nServer: backend/1\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()
        w.close()

    async def main() -> bytes:
        up = await asyncio.start_server(backend, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        docs = _with_endpoint(ingress_yaml("web", "example.test", {}) + WEB_SERVICE_YAML, port)
        server = ProxyServer(Router(parse_manifests(docs)), settings=ProxySettings(**settings))
        await server.start(("127.0.0.1", 0))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(b"GET /x HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
            await w.drain()
            data = await asyncio.wait_for(r.read(), 2)
            w.close()
            return data
        finally:
            await server.shutdown(1)
            up.close()

    return asyncio.run(main())


def _with_endpoint(docs: str, port: int) -> str:
    """``docs`` with Service web's one endpoint at 127.0.0.1:``port``."""
    slice_ports = "addressType: IPv4\nports: [{port: 80}]"
    assert docs.count(slice_ports) == 1 and docs.count("10.0.0.1") == 1
    return docs.replace(slice_ports, f"addressType: IPv4\nports: [{{port: {port}}}]").replace(
        "10.0.0.1", "127.0.0.1")


@pytest.mark.parametrize("settings,expected", [(DEFAULT, []), (TOKENS, [TOKEN]),
                                               (BOTH, [b"backend/1"])])
def test_server_end_to_end(settings: dict[str, Any], expected: list[bytes]) -> None:
    out = _server_exchange(settings)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok"), out
    assert servers(out) == expected


# --- through IngressASGI ----------------------------------------------------------------------

def _asgi(settings: dict[str, Any], app_headers: list[Any], host: str = "example.test",
          ) -> list[dict[str, Any]]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2"), *app_headers]})
        await send({"type": "http.response.body", "body": b"ok"})

    res = parse_manifests(ingress_yaml("web", "example.test", {}) + WEB_SERVICE_YAML)
    asgi = IngressASGI(res, backends={"default/web": app}, settings=ProxySettings(**settings))
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": [(b"host", host.encode())]}
    asyncio.run(asgi(scope, receive, send))
    return sent


def asgi_servers(sent: list[dict[str, Any]]) -> list[bytes]:
    return [v if isinstance(v, bytes) else v.encode("latin-1")
            for n, v in sent[0].get("headers") or ()
            if (n if isinstance(n, bytes) else n.encode("latin-1")).lower() == b"server"]


@pytest.mark.parametrize("settings,with_backend,without", CASES)
def test_asgi_server_header_agrees_with_the_core(settings: dict[str, Any],
                                                 with_backend: list[bytes],
                                                 without: list[bytes]) -> None:
    sent = _asgi(settings, [(b"server", b"backend/1")])
    assert sent[0]["status"] == 200 and asgi_servers(sent) == with_backend
    assert asgi_servers(_asgi(settings, [])) == without
    # the core, the same answers
    core = servers(pair(settings, upstream(b"Server: backend/1")).send(GET))
    assert core == with_backend


@pytest.mark.parametrize("settings,expected", [(DEFAULT, []), (TOKENS, [TOKEN]),
                                               (BOTH, [TOKEN])])
def test_asgi_own_answers(settings: dict[str, Any], expected: list[bytes]) -> None:
    sent = _asgi(settings, [], host="nobody.test")
    assert sent[0]["status"] == 404 and asgi_servers(sent) == expected


def test_asgi_str_server_name_passes_with_both() -> None:
    # uvicorn writes a str name an app sends: read as the bytes spelling
    sent = _asgi(BOTH, [("Server", "backend/1")])
    assert asgi_servers(sent) == [b"backend/1"]
    assert asgi_servers(_asgi(TOKENS, [("Server", "backend/1")])) == [TOKEN]
    assert asgi_servers(_asgi(DEFAULT, [("Server", "backend/1")])) == []


def test_asgi_websocket_accept() -> None:
    # the core writes it on a 101 too (test_core_switching_protocols)
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"server", b"ws/1")]})
        await send({"type": "websocket.close", "code": 1000})

    res = parse_manifests(ingress_yaml("web", "example.test", {}) + WEB_SERVICE_YAML)
    for settings, expected in ((DEFAULT, []), (TOKENS, [TOKEN]), (BOTH, [b"ws/1"])):
        asgi = IngressASGI(res, backends={"default/web": app},
                           settings=ProxySettings(**settings))
        sent: list[dict[str, Any]] = []

        async def send(m: Any) -> None:
            sent.append(dict(m))

        async def receive() -> Any:
            return {"type": "websocket.connect"}

        scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "scheme": "ws", "path": "/x", "raw_path": b"/x", "root_path": "",
                 "query_string": b"", "client": ("10.1.1.1", 5000),
                 "server": ("127.0.0.1", 80), "subprotocols": [],
                 "headers": [(b"host", b"example.test")]}
        asyncio.run(asgi(scope, receive, send))
        assert sent[0]["type"] == "websocket.accept" and asgi_servers(sent) == expected, settings


# --- hiding_send and an app's str header names (session 28's note) ----------------------------

def test_hide_headers_with_str_names_from_the_app() -> None:
    # Before: bytes("x-powered-by") raised TypeError("string argument without an encoding")
    # out of the app's send.
    sent = _asgi({"hide_headers": ("X-Powered-By",)},
                 [("x-powered-by", "php"), ("X-Kept", "1"), (b"x-powered-by", b"b")])
    assert sent[0]["status"] == 200
    names = [n for n, _ in sent[0]["headers"]]
    assert "X-Kept" in names
    assert all((n if isinstance(n, bytes) else n.encode()).lower() != b"x-powered-by"
               for n in names)


def test_hiding_send_refuses_a_name_that_is_no_string_naming_it() -> None:
    got: list[Any] = []

    async def send(m: Any) -> None:
        got.append(m)

    hiding = hiding_send(send, frozenset({b"x-a"}))
    with pytest.raises(TypeError, match="ASGI response header name 7 is not a byte string"):
        asyncio.run(hiding({"type": "http.response.start", "status": 200,
                            "headers": [(7, b"v")]}))
    asyncio.run(hiding({"type": "http.response.start", "status": 200,
                        "headers": [("X-A", "1"), (bytearray(b"x-b"), b"2")]}))
    assert got[0]["headers"] == [(bytearray(b"x-b"), b"2")]


# --- cost on a plain request ------------------------------------------------------------------

_OURS = {"add_server", "passes_backend_server", "server_token", "server_send", "adding",
         "reply_type"}


def test_plain_requests_call_no_server_header_code() -> None:
    from test_perf_guards_s25 import MANIFESTS, _app, _asgi_call, core_request, python_calls

    from ingresslib.proxy._connection import Proxy

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)
    with python_calls() as seen:
        core_request(proxy, 1.0)
    assert seen and not [c for c in seen if c[1] in _OURS]
    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app})
    _asgi_call(asgi, [], [])
    with python_calls() as seen:
        _asgi_call(asgi, [], [])
    assert seen and not [c for c in seen if c[1] in _OURS]


# --- service-upstream as a ConfigMap default (Router(service_upstream=...)) --------------------
# config.go ``defaults.Backend.ServiceUpstream bool `json:"service-upstream"```;
# annotations/serviceupstream/main.go Parse: a missing annotation -> defBackend.ServiceUpstream,
# a present one (an invalid one: GetBoolAnnotation's false) is the Ingress's own.

def _upstream_ingress(name: str, host: str, value: str | None) -> str:
    ann = "" if value is None else \
        f"\n  annotations: {{nginx.ingress.kubernetes.io/service-upstream: {value!r}}}"
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default{ann}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""


UPSTREAM_DOCS = (_upstream_ingress("plain", "a.test", None)
                 + _upstream_ingress("says-false", "b.test", "false")
                 + _upstream_ingress("bad", "c.test", "yes")
                 + _upstream_ingress("says-true", "d.test", "true") + """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
""")
CLUSTER_IP = ("10.96.0.10", 80)
POD = ("10.0.0.1", 8080)


def _endpoints(router: Router) -> dict[str, Any]:
    out = {}
    for host in ("a.test", "b.test", "c.test", "d.test"):
        d = router.route("GET", host, "/")
        assert d is not None
        out[host] = d.endpoint
    return out


def test_service_upstream_default_false_as_before() -> None:
    r = Router(parse_manifests(UPSTREAM_DOCS))
    assert r.service_upstream is False
    assert _endpoints(r) == {"a.test": POD, "b.test": POD, "c.test": POD, "d.test": CLUSTER_IP}


def test_service_upstream_default_true_for_ingresses_without_the_annotation() -> None:
    r = Router(parse_manifests(UPSTREAM_DOCS), service_upstream=True)
    # the Ingress's "false" wins over the ConfigMap's true; an invalid value is false too
    assert _endpoints(r) == {"a.test": CLUSTER_IP, "b.test": POD, "c.test": POD,
                             "d.test": CLUSTER_IP}
    assert [w.object for w in r.warnings
            if "service-upstream" in w.field] == ["Ingress default/bad"]


def test_service_upstream_default_changed_rebuilds() -> None:
    res = parse_manifests(UPSTREAM_DOCS)
    r = Router(res)
    r._set_service_upstream(True)
    assert r.service_upstream is True and _endpoints(r)["a.test"] == CLUSTER_IP
    r.update(res)  # an endpoint-only update keeps it
    assert _endpoints(r)["a.test"] == CLUSTER_IP
    r._set_service_upstream(False, res)
    assert _endpoints(r)["a.test"] == POD
    with pytest.raises(TypeError, match="service_upstream"):
        Router(res, service_upstream="true")  # type: ignore[arg-type]


def test_service_upstream_configmap_key() -> None:
    cfg = parse_config_data({"service-upstream": "true"})
    assert cfg.warnings == () and cfg.service_upstream is True
    assert parse_config_data({}).service_upstream is False
    assert parse_config_data({"service-upstream": "0"}).service_upstream is False
    with pytest.raises(ValidationError, match="service-upstream"):
        parse_config_data({"service-upstream": "yes"})
