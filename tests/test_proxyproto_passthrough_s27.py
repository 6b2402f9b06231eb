"""Session 27 (H4): PROXY protocol and ssl-passthrough leftovers of session 26.

- A trusted PROXY protocol header's destination port 443 makes ``$pass_access_scheme`` https
  (ingress-nginx rootfs/etc/nginx/lua/lua_ingress.lua ``rewrite()``: "if
  config.use_proxy_protocol then if ngx.var.proxy_protocol_server_port == "443" then
  ngx.var.pass_access_scheme = "https""): X-Forwarded-Proto/-Scheme, X-Scheme and the
  ssl-redirect follow it (HSTS stays on ``$scheme``).
- ssl-passthrough: an Exact ``/`` beside the Prefix ``/`` of the passthrough host no longer
  closes the connection (controller.go: the server's first location of path ``/``, the
  Prefix rule's, is the passthrough backend).
- A pipe's final flush is bounded even with ``proxy_read_timeout`` 0.
- ``ingresslib check`` / ``explain`` take ``--enable-ssl-passthrough`` (default off).

Tests not marked "guard" fail on the tree before this session's change.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ingresslib import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy._passthrough import CLOSE, PassthroughRoutes

_PT = "nginx.ingress.kubernetes.io/ssl-passthrough"


def _ingress(name: str, host: str, service: str, *, paths: tuple[tuple[str, str, str], ...] = (),
             annotations: dict[str, str] | None = None) -> str:
    ann = "".join(f"\n    {k}: {v!r}" for k, v in (annotations or {}).items())
    meta = f"metadata:\n  name: {name}\n  namespace: default"
    if ann:
        meta += "\n  annotations:" + ann
    rows = paths or (("/", "Prefix", service),)
    lines = "".join(
        f"\n      - path: {p}\n        pathType: {t}\n"
        f"        backend: {{service: {{name: {s}, port: {{number: 443}}}}}}" for p, t, s in rows)
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
{meta}
spec:
  rules:
  - host: {host!r}
    http:
      paths:{lines}
"""


def _service(name: str, port: int | None) -> str:
    eps = "endpoints: [{addresses: [127.0.0.1]}]" if port is not None else "endpoints: []"
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 443, targetPort: {port or 1}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: {port or 1}}}]
{eps}
"""


def _res(*docs: str) -> Any:
    return parse_manifests("---\n".join(docs))


# --- ssl-passthrough: which rule's backend -------------------------------------------------------

def test_passthrough_exact_root_beside_prefix_root_uses_the_prefix_rule() -> None:
    # ingress-nginx: the Prefix '/' rule replaces the server's default root location (the
    # first of path '/'); the Exact '/' is a location appended after it. The passthrough
    # backend is the first location of path '/': the Prefix rule's Service. Before: a GET /
    # lookup found the Exact rule first and the connection was closed.
    res = _res(_ingress("a", "x.test", "svc", annotations={_PT: "true"},
                        paths=(("/", "Exact", "exact"), ("/", "Prefix", "svc"))),
               _service("svc", 9443), _service("exact", 9444))
    router = Router(res)
    assert router.route("GET", "x.test", "/").endpoint == ("127.0.0.1", 9444)   # HTTP: Exact
    assert PassthroughRoutes(True).decide(router, b"x.test", "10.0.0.1") == ("127.0.0.1", 9443)


def test_passthrough_exact_root_in_another_ingress_uses_the_prefix_rule() -> None:
    res = _res(_ingress("a", "x.test", "svc", annotations={_PT: "true"}),
               _ingress("b", "x.test", "exact", paths=(("/", "Exact", "exact"),)),
               _service("svc", 9443), _service("exact", 9444))
    router = Router(res)
    assert PassthroughRoutes(True).decide(router, b"x.test", None) == ("127.0.0.1", 9443)


def test_guard_passthrough_exact_root_only_still_closes() -> None:
    # No Prefix '/': the server's root location stays the default one, without a Service.
    res = _res(_ingress("a", "x.test", "exact", annotations={_PT: "true"},
                        paths=(("/", "Exact", "exact"),)), _service("exact", 9444))
    assert PassthroughRoutes(True).decide(Router(res), b"x.test", None) == CLOSE


def test_router_primary_pick_never_the_canary() -> None:
    res = _res(_ingress("a", "x.test", "svc"), _service("svc", 9443),
               _ingress("c", "x.test", "cny", annotations={
                   "nginx.ingress.kubernetes.io/canary": "true",
                   "nginx.ingress.kubernetes.io/canary-weight": "100"}),
               _service("cny", 9444))
    router = Router(res)
    match = next(m for m in router.table.routes if m.host == "x.test" and m.path == "/")
    assert router.route("GET", "x.test", "/").endpoint == ("127.0.0.1", 9444)
    d = router._primary_pick(match, "x.test", "/", None)
    assert d is not None and d.endpoint == ("127.0.0.1", 9443) and not d.canary
    # a Match of another table is none of this router's routes
    other = Router(_res(_ingress("z", "z.test", "svc"), _service("svc", 1)))
    foreign = next(m for m in other.table.routes if m.host == "z.test")
    assert router._primary_pick(foreign, "x.test", "/", None) is None


def test_guard_passthrough_foreign_router_keeps_route_answer() -> None:
    # A router that is not ingresslib's Router: asked to route a GET / as before.
    res = _res(_ingress("a", "x.test", "svc", annotations={_PT: "true"}), _service("svc", 9443))
    inner = Router(res)

    class Foreign:
        table = inner.table

        def route(self, *a: Any, **k: Any) -> Any:
            return inner.route(*a, **k)

    assert PassthroughRoutes(True).decide(Foreign(), b"x.test", None) == ("127.0.0.1", 9443)


# --- ssl-passthrough: the final flush is bounded ------------------------------------------------

def _client_hello(sni: str) -> bytes:
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


@pytest.mark.asyncio
async def test_passthrough_flush_to_a_client_that_never_reads_is_bounded_without_read_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # proxy_read_timeout 0 (no bound on the pipe): the backend sends more than the client's
    # socket takes, then closes. Before, the pipe flushed to the client for ever (the socket
    # held, and its max_connections place); now it is cut after FLUSH_TIMEOUT.
    import socket

    from ingresslib import _passthrough_pipe
    from ingresslib.proxy._server import ProxyServer

    monkeypatch.setattr(_passthrough_pipe, "FLUSH_TIMEOUT", 0.3, raising=False)
    blob = b"x" * (4 << 20)
    go = asyncio.Event()

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.read(1)        # the ClientHello arrived
            await asyncio.wait_for(go.wait(), 3)
            w.write(blob)
            w.write_eof()
            await asyncio.wait_for(w.drain(), 3)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            w.close()

    bsrv = await asyncio.start_server(backend, "127.0.0.1", 0)
    bport = bsrv.sockets[0].getsockname()[1]
    res = _res(_ingress("a", "x.test", "svc", annotations={_PT: "true"}),
               _service("svc", bport))
    server = ProxyServer(Router(res), ssl_passthrough=True, proxy_read_timeout=0,
                         client_header_timeout=3)
    await server.start(None, ("127.0.0.1", 0))
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", server.addresses[0][2]))
        await loop.sock_sendall(sock, _client_hello("x.test"))
        for _ in range(100):
            if server.passthrough and next(iter(server.passthrough)).upstream is not None:
                break
            await asyncio.sleep(0.01)
        pipe = next(iter(server.passthrough))
        # The backend's last bytes are all read before the client stops reading (no flow
        # control pause): its EOF closes the pipe with them still to be written.
        pipe.client.set_write_buffer_limits(high=1 << 30)
        pipe.client.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                        4096)
        go.set()
        for _ in range(200):
            if pipe.closed:
                break
            await asyncio.sleep(0.01)
        assert pipe.closed and pipe in server.passthrough   # flushing to the client
        for _ in range(150):
            if not server.passthrough:
                break
            await asyncio.sleep(0.01)
        assert not server.passthrough   # cut after the bound, the client never read
    finally:
        sock.close()
        await server.shutdown(0.2)
        bsrv.close()
        await bsrv.wait_closed()


# --- PROXY protocol: a destination port 443 makes $pass_access_scheme https ----------------------

_FORCE = {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}
_PP_YAML = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {nginx.ingress.kubernetes.io/force-ssl-redirect: "true"}
spec:
  rules:
  - host: pp.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: 8080}]}]
"""


def _core_exchange(request: bytes, **kw: Any) -> tuple[bytes, bytes]:
    """(what the upstream got, what the client got) for one request through the sans-IO core."""
    from ingresslib.proxy import (
        OpenUpstream, Proxy, ProxySettings, SendDownstream, SendUpstream,
    )

    settings = kw.pop("settings", ProxySettings())
    proxy = Proxy(Router(parse_manifests(_PP_YAML)), settings)
    conn = proxy.connection(("203.0.113.7", 40000), now=0.0, **kw)
    acts = conn.start(0.0) + conn.receive_data(request, 0.0)
    opened = [a for a in acts if isinstance(a, OpenUpstream)]
    if opened:
        acts += conn.upstream_connected(opened[0].conn_id, 0.0)
        acts += conn.upstream_data(opened[0].conn_id,
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0.0)
    up = b"".join(a.data for a in acts if isinstance(a, SendUpstream))
    down = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    return up, down


_PP_GET = b"GET /x HTTP/1.1\r\nHost: pp.test\r\n\r\n"


def test_core_proxy_protocol_port_443_is_https_for_forwarded_headers_and_redirects() -> None:
    up, down = _core_exchange(_PP_GET, local_port=80, proxy_protocol_port=443)
    assert down.startswith(b"HTTP/1.1 200 "), down    # no force-ssl-redirect: already https
    for line in (b"x-forwarded-proto: https", b"x-forwarded-scheme: https", b"x-scheme: https",
                 b"x-forwarded-port: 443"):
        assert b"\r\n" + line + b"\r\n" in up, (line, up)
    # HSTS follows $scheme, not $pass_access_scheme (lua_ingress.lua header()): none over http
    assert b"strict-transport-security" not in down.lower()


def test_core_proxy_protocol_port_443_wins_over_a_trusted_x_forwarded_proto() -> None:
    from ingresslib.proxy import ProxySettings

    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.0/24",))
    req = b"GET /x HTTP/1.1\r\nHost: pp.test\r\nX-Forwarded-Proto: http\r\n\r\n"
    up, down = _core_exchange(req, settings=s, local_port=80, proxy_protocol_port=443)
    assert down.startswith(b"HTTP/1.1 200 "), down
    assert b"\r\nx-forwarded-proto: https\r\n" in up
    # guard: another port leaves the hop's X-Forwarded-Proto in charge (a redirect)
    up, down = _core_exchange(req, settings=s, local_port=80, proxy_protocol_port=8443)
    assert down.startswith(b"HTTP/1.1 308 "), down


def test_core_other_proxy_protocol_port_keeps_the_listeners_scheme() -> None:
    up, down = _core_exchange(_PP_GET, local_port=80, proxy_protocol_port=8443)
    assert down.startswith(b"HTTP/1.1 308 ") and b"location: https://pp.test/x" in down.lower()
    up, down = _core_exchange(_PP_GET, local_port=443)   # no PROXY protocol: the listener's
    assert down.startswith(b"HTTP/1.1 308 ")


class _Echo:
    """A backend answering each request with its head."""

    async def __aenter__(self) -> tuple[str, int]:
        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await r.readuntil(b"\r\n\r\n")
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head))
                    await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                w.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _pp_request(header: bytes, cidr: str) -> tuple[int, bytes]:
    from ingresslib.proxy._server import ProxyServer
    from tests._server_helpers import StubRouter

    async with _Echo() as ep:
        server = ProxyServer(StubRouter([ep], annotations=_FORCE), use_proxy_protocol=True,
                             proxy_real_ip_cidr=(cidr,))
        await server.start(("127.0.0.1", 0))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(header + _PP_GET)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
            status = int(head.split(b" ", 2)[1])
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n")[0])
            body = await asyncio.wait_for(r.readexactly(length), 2)
            w.close()
            return status, body.lower()
        finally:
            await server.shutdown(1)


@pytest.mark.asyncio
async def test_server_proxy_protocol_port_443_on_the_http_listener_is_https() -> None:
    status, seen = await _pp_request(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n",
                                     "127.0.0.0/8")
    assert status == 200    # force-ssl-redirect: already https in front
    assert b"\r\nx-forwarded-proto: https\r\n" in seen and b"\r\nx-forwarded-port: 443\r\n" in seen


@pytest.mark.asyncio
async def test_guard_server_untrusted_peers_port_443_is_not_used() -> None:
    # The header's destination port follows the same rule as its client: only a peer inside
    # proxy-real-ip-cidr is believed (nginx reads $proxy_protocol_server_port from anyone).
    status, _ = await _pp_request(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n",
                                  "10.0.0.0/8")
    assert status == 308
    status, _ = await _pp_request(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 80\r\n",
                                  "127.0.0.0/8")
    assert status == 308


# --- check / explain --enable-ssl-passthrough (default off, as the controller's flag) -----------

def _pt_files(tmp_path: Any, host: str = "pt.test") -> str:
    (tmp_path / "pt.yaml").write_text("---\n".join(
        [_ingress("pt", host, "svc", annotations={_PT: "true"}), _service("svc", 9443)]))
    return str(tmp_path)


def test_cli_check_without_the_flag_says_the_annotation_is_ignored(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from ingresslib._cli import main

    files = _pt_files(tmp_path, "*.wild.test")
    assert main(["check", "-f", files]) == 0
    err = capsys.readouterr().err
    assert "ignored for host *.wild.test: SSL passthrough is off" in err
    assert "never equals a server name" not in err
    assert main(["check", "--enable-ssl-passthrough", "-f", files]) == 0
    err = capsys.readouterr().err
    assert "SSL passthrough is off" not in err
    assert "ignored for host *.wild.test: a wildcard host never equals a server name" in err


def test_cli_explain_without_the_flag_terminates_with_it_pipes(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from ingresslib._cli import main

    files = _pt_files(tmp_path)
    assert main(["explain", "-o", "json", "-f", files, "https://pt.test/x"]) == 0
    pt = json.loads(capsys.readouterr().out)["ssl_passthrough"]
    assert (pt["host"], pt["enabled"], pt["endpoint"]) == ("pt.test", False, None)
    assert pt["reason"].startswith("ignored without --enable-ssl-passthrough")
    assert pt["with_flag"]["endpoint"] == "127.0.0.1:9443"
    assert main(["explain", "-f", files, "https://pt.test/x"]) == 0
    assert "ssl-passthrough: ignored without --enable-ssl-passthrough" in capsys.readouterr().out
    assert main(["explain", "--enable-ssl-passthrough", "-o", "json", "-f", files,
                 "https://pt.test/x"]) == 0
    pt = json.loads(capsys.readouterr().out)["ssl_passthrough"]
    assert (pt["enabled"], pt["endpoint"]) == (True, "127.0.0.1:9443")
    assert main(["explain", "--enable-ssl-passthrough", "-f", files, "https://pt.test/x"]) == 0
    assert "ssl-passthrough: piped to 127.0.0.1:9443" in capsys.readouterr().out


def test_api_check_and_explain_take_ssl_passthrough() -> None:
    import ingresslib

    res = _res(_ingress("pt", "pt.test", "svc", annotations={_PT: "true"}), _service("svc", 9443))
    assert any("SSL passthrough is off" in d.message for d in ingresslib.check(res))
    assert not any("SSL passthrough is off" in d.message
                   for d in ingresslib.check(res, ssl_passthrough=True))
    assert ingresslib.explain(res, "https://pt.test/")["ssl_passthrough"]["enabled"] is False
    assert ingresslib.explain(res, "https://pt.test/", ssl_passthrough=True)[
        "ssl_passthrough"]["endpoint"] == "127.0.0.1:9443"
    with pytest.raises(TypeError):
        ingresslib.check(res, ssl_passthrough="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["check", "explain"])
def test_cli_help_names_the_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ingresslib._cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "--enable-ssl-passthrough" in out and "default: off" in out
