"""Session 26: ``ssl-passthrough`` with ``--enable-ssl-passthrough`` (ProxyServer(ssl_passthrough=True)).

ingress-nginx (internal/ingress/controller/nginx.go ``setupSSLProxy``, tcpproxy ``TCPProxy.
Handle``/``Get``/``pipe``; controller.go ``createServers``/``getConfiguration``): the TLS
port's proxy reads the ClientHello, and a server name equal to a passthrough server's host is
piped untouched to the backend of that server's ``/`` location (the client sees the backend's
certificate); every other connection is terminated by nginx. Without the flag the annotation
does nothing. Port 80 is nginx's normal server for the host. Before this session ingresslib
ignored the annotation ("not implemented"): every test here but those marked "guard" fails on
that code.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import trustme

from ingresslib import parse_manifests
from ingresslib._router import Router
from ingresslib._table import RouteTable
from ingresslib._tls import CertificateStore
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options
from ingresslib.proxy._passthrough import CLOSE, PassthroughRoutes, passthrough_hosts
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings

_ANN = "nginx.ingress.kubernetes.io/ssl-passthrough"
_BACKEND_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nbackend"
_TERM_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nterminated"


# --- manifests ---------------------------------------------------------------------------------

def _ingress(name: str, host: str, service: str, *, path: str = "/", path_type: str = "Prefix",
             annotations: dict[str, str] | None = None, tls_secret: str | None = None,
             stamp: str | None = None) -> str:
    ann = "".join(f"\n    {k}: {v!r}" for k, v in (annotations or {}).items())
    meta = f"metadata:\n  name: {name}\n  namespace: default"
    if stamp:
        meta += f"\n  creationTimestamp: {stamp!r}"
    if ann:
        meta += "\n  annotations:" + ann
    tls = (f"\n  tls:\n  - hosts: [{host}]\n    secretName: {tls_secret}" if tls_secret else "")
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
{meta}
spec:{tls}
  rules:
  - host: {host!r}
    http:
      paths:
      - path: {path}
        pathType: {path_type}
        backend: {{service: {{name: {service}, port: {{number: 443}}}}}}
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


def _secret(name: str, leaf: trustme.LeafCert) -> str:
    crt = b"".join(p.bytes() for p in leaf.cert_chain_pems)
    key = leaf.private_key_pem.bytes()
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
data:
  tls.crt: {base64.b64encode(crt).decode()}
  tls.key: {base64.b64encode(key).decode()}
"""


def _res(*docs: str) -> Any:
    return parse_manifests("---\n".join(docs))


# --- servers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backend_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def proxy_ca() -> trustme.CA:
    return trustme.CA()


async def _backend_handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """``ECHO`` first: echoes every byte until EOF; anything else: an HTTP request head,
    answered ``backend``."""
    try:
        first = await r.readexactly(4)
        if first == b"ECHO":
            while True:
                data = await r.read(65536)
                if not data:
                    break
                w.write(data)
                await w.drain()
        else:
            await r.readuntil(b"\r\n\r\n")
            w.write(_BACKEND_ANSWER)
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        w.close()


async def _plain_handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        await r.readuntil(b"\r\n\r\n")
        w.write(_TERM_ANSWER)
        await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        w.close()


class _Env:
    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.proxy: ProxyServer | None = None
        self.backend_der = b""

    @property
    def tls_port(self) -> int:
        assert self.proxy is not None
        return [a for a in self.proxy.addresses if a[0] == "https"][0][2]

    @property
    def http_port(self) -> int:
        assert self.proxy is not None
        return [a for a in self.proxy.addresses if a[0] == "http"][0][2]


async def _closed_port() -> int:
    srv = await asyncio.start_server(_plain_handler, "127.0.0.1", 0)
    port: int = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    return port


@pytest_asyncio.fixture
async def make(backend_ca: trustme.CA, proxy_ca: trustme.CA) -> AsyncIterator[Any]:
    envs: list[_Env] = []

    async def build(*, enabled: bool = True, backend_down: bool = False, root: bool = True,
                    extra: tuple[str, ...] = (), pass_annotations: dict[str, str] | None = None,
                    **server_kw: Any) -> _Env:
        env = _Env()
        envs.append(env)
        leaf = backend_ca.issue_cert("pass.test")
        env.backend_der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        bctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(bctx)
        backend = await asyncio.start_server(_backend_handler, "127.0.0.1", 0, ssl=bctx)
        plain = await asyncio.start_server(_plain_handler, "127.0.0.1", 0)
        env.servers += [backend, plain]
        bport = await _closed_port() if backend_down else backend.sockets[0].getsockname()[1]
        ann = {_ANN: "true", **(pass_annotations or {})}
        res = _res(
            _ingress("pass", "pass.test", "pass", annotations=ann,
                     path="/" if root else "/api"),
            _service("pass", bport),
            _ingress("term", "term.test", "term", tls_secret="term-tls"),
            _service("term", plain.sockets[0].getsockname()[1]),
            _secret("term-tls", proxy_ca.issue_cert("term.test")),
            *extra,
        )
        store = CertificateStore()
        store.update(res)
        server_kw.setdefault("client_header_timeout", 3)
        env.proxy = ProxyServer(Router(res), cert_store=store, ssl_passthrough=enabled,
                                **server_kw)
        await env.proxy.start(("127.0.0.1", 0), ("127.0.0.1", 0))
        return env

    try:
        yield build
    finally:
        for env in envs:
            if env.proxy is not None:
                await env.proxy.shutdown(0.5)
            for s in env.servers:
                s.close()
                await s.wait_closed()


def _client_ctx(ca: trustme.CA | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca.configure_trust(ctx)
    return ctx


async def _tls_request(port: int, sni: str | None, ca: trustme.CA | None,
                       payload: bytes | None = None) -> tuple[bytes, bytes]:
    """(the peer certificate, DER; the whole answer)."""
    if payload is None:
        payload = f"GET / HTTP/1.1\r\nHost: {sni or 'x'}\r\nConnection: close\r\n\r\n".encode()
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=_client_ctx(ca), server_hostname=sni or ""), 3)
    try:
        obj = w.get_extra_info("ssl_object")
        der = obj.getpeercert(binary_form=True)
        w.write(payload)
        await w.drain()
        answer = await asyncio.wait_for(r.read(), 3)
        return der, answer
    finally:
        w.close()


# --- through the TLS listener ------------------------------------------------------------------

@pytest.mark.asyncio
async def test_passthrough_host_gets_the_backends_certificate_and_answer(
        make: Any, backend_ca: trustme.CA) -> None:
    env = await make()
    der, answer = await _tls_request(env.tls_port, "pass.test", backend_ca)
    assert der == env.backend_der
    assert answer.endswith(b"\r\n\r\nbackend")


@pytest.mark.asyncio
async def test_sni_case_does_not_matter(make: Any, backend_ca: trustme.CA) -> None:
    env = await make()
    ctx = _client_ctx(None)
    r, w = await asyncio.open_connection("127.0.0.1", env.tls_port, ssl=ctx,
                                         server_hostname="PASS.Test")
    try:
        assert w.get_extra_info("ssl_object").getpeercert(binary_form=True) == env.backend_der
    finally:
        w.close()


@pytest.mark.asyncio
async def test_other_host_on_the_same_listener_is_terminated_here(
        make: Any, proxy_ca: trustme.CA) -> None:
    env = await make()
    der, answer = await _tls_request(env.tls_port, "term.test", proxy_ca)
    assert der != env.backend_der
    assert answer.endswith(b"\r\n\r\nterminated")
    # and the passthrough host right after, on the same listener
    der2, _ = await _tls_request(env.tls_port, "pass.test", None)
    assert der2 == env.backend_der


@pytest.mark.parametrize("sni", [None, "unknown.test"])
@pytest.mark.asyncio
async def test_no_or_unknown_server_name_is_terminated_here(make: Any, sni: str | None) -> None:
    env = await make()
    der, answer = await _tls_request(env.tls_port, sni, None,
                                     b"GET / HTTP/1.1\r\nHost: term.test\r\nConnection: close\r\n\r\n")
    # guard: as before this session (passes on the old code too)
    assert der != env.backend_der            # the proxy's (default) certificate
    assert answer.endswith(b"\r\n\r\nterminated")
    assert not getattr(env.proxy, "passthrough", ())


@pytest.mark.asyncio
async def test_flag_off_terminates_and_warns(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingresslib.server"):
        env = await make(enabled=False)
    der, _ = await _tls_request(env.tls_port, "pass.test", None,
                                b"GET / HTTP/1.1\r\nHost: pass.test\r\nConnection: close\r\n\r\n")
    assert der != env.backend_der
    said = [r.getMessage() for r in caplog.records if _ANN in r.getMessage()]
    assert said and "SSL passthrough is off" in said[0], said
    assert not any("not implemented" in m for m in said)


@pytest.mark.asyncio
async def test_backend_down_closes_the_connection(make: Any) -> None:
    env = await make(backend_down=True)
    with pytest.raises((ssl.SSLError, OSError, asyncio.IncompleteReadError)):
        await _tls_request(env.tls_port, "pass.test", None)
    await asyncio.sleep(0.05)
    assert not env.proxy.passthrough and env.proxy.sockets_held() == 0


@pytest.mark.asyncio
async def test_no_endpoint_closes_the_connection(make: Any) -> None:
    env = await make(extra=(_ingress("pass2", "pass2.test", "empty",
                                     annotations={_ANN: "true"}), _service("empty", None)))
    with pytest.raises((ssl.SSLError, OSError, asyncio.IncompleteReadError)):
        await _tls_request(env.tls_port, "pass2.test", None)


@pytest.mark.asyncio
async def test_host_without_a_root_rule_closes_the_connection(
        make: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingresslib.server"):
        env = await make(root=False)
    assert any("has no '/' rule" in r.getMessage() for r in caplog.records)
    with pytest.raises((ssl.SSLError, OSError, asyncio.IncompleteReadError)):
        await _tls_request(env.tls_port, "pass.test", None)


def _client_hello(sni: str) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO, bytes]:
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _client_ctx(None).wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return obj, inc, out, out.read()


@pytest.mark.asyncio
async def test_client_hello_split_across_reads(make: Any) -> None:
    env = await make()
    obj, inc, out, hello = _client_hello("pass.test")
    r, w = await asyncio.open_connection("127.0.0.1", env.tls_port)
    try:
        for piece in (hello[:1], hello[1:7], hello[7:60], hello[60:]):
            w.write(piece)
            await w.drain()
            await asyncio.sleep(0.02)
        while True:
            got = await asyncio.wait_for(r.read(65536), 3)
            assert got, "closed during the handshake"
            inc.write(got)
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = out.read()
                if pending:
                    w.write(pending)
        assert obj.getpeercert(binary_form=True) == env.backend_der
        w.write(out.read())
        obj.write(b"GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n")
        w.write(out.read())
        answer = b""
        while not answer.endswith(b"backend"):
            got = await asyncio.wait_for(r.read(65536), 3)
            if not got:
                break
            inc.write(got)
            try:
                answer += obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
        assert answer.endswith(b"\r\n\r\nbackend")
    finally:
        w.close()


@pytest.mark.asyncio
async def test_large_data_both_ways(make: Any) -> None:
    env = await make()
    r, w = await asyncio.open_connection("127.0.0.1", env.tls_port, ssl=_client_ctx(None),
                                         server_hostname="pass.test")
    blob = bytes(range(256)) * 8192   # 2 MiB
    try:
        async def send() -> None:
            w.write(b"ECHO")
            for i in range(0, len(blob), 65536):
                w.write(blob[i:i + 65536])
                await w.drain()

        sender = asyncio.create_task(send())
        got = await asyncio.wait_for(r.readexactly(len(blob)), 10)
        await sender
        assert got == blob
    finally:
        w.close()


@pytest.mark.asyncio
async def test_client_eof_closes_both_sides(make: Any) -> None:
    env = await make()
    r, w = await asyncio.open_connection("127.0.0.1", env.tls_port, ssl=_client_ctx(None),
                                         server_hostname="pass.test")
    w.write(b"ECHOhello")
    assert await asyncio.wait_for(r.readexactly(5), 3) == b"hello"
    assert len(env.proxy.passthrough) == 1
    w.transport.abort()   # the client is gone
    for _ in range(100):
        if not env.proxy.passthrough:
            break
        await asyncio.sleep(0.01)
    assert not env.proxy.passthrough


@pytest.mark.asyncio
async def test_quiet_pipe_is_closed_after_proxy_read_timeout(make: Any) -> None:
    env = await make(proxy_read_timeout=0.2)
    r, w = await asyncio.open_connection("127.0.0.1", env.tls_port, ssl=_client_ctx(None),
                                         server_hostname="pass.test")
    try:
        w.write(b"ECHOx")
        assert await asyncio.wait_for(r.readexactly(1), 3) == b"x"
        try:
            rest = await asyncio.wait_for(r.read(), 3)
        except (ConnectionError, ssl.SSLError):
            rest = b""
        assert rest == b""
        assert not env.proxy.passthrough
    finally:
        w.close()


@pytest.mark.asyncio
async def test_pipes_count_against_max_connections(make: Any) -> None:
    env = await make(max_connections=1)
    r, w = await asyncio.open_connection("127.0.0.1", env.tls_port, ssl=_client_ctx(None),
                                         server_hostname="pass.test")
    try:
        w.write(b"ECHOa")
        assert await asyncio.wait_for(r.readexactly(1), 3) == b"a"
        assert env.proxy.sockets_held() == 1
        with pytest.raises((ssl.SSLError, OSError, asyncio.IncompleteReadError)):
            await _tls_request(env.tls_port, "pass.test", None)
    finally:
        w.close()


@pytest.mark.asyncio
async def test_shutdown_ends_open_pipes(make: Any) -> None:
    env = await make()
    r, w = await asyncio.open_connection("127.0.0.1", env.tls_port, ssl=_client_ctx(None),
                                         server_hostname="pass.test")
    w.write(b"ECHOa")
    assert await asyncio.wait_for(r.readexactly(1), 3) == b"a"
    await env.proxy.shutdown(0.2)
    assert not env.proxy.passthrough
    try:
        rest = await asyncio.wait_for(r.read(), 3)
    except (ConnectionError, ssl.SSLError):
        rest = b""
    assert rest == b""
    w.close()


@pytest.mark.asyncio
async def test_guard_plain_http_for_the_passthrough_host_is_routed_as_usual(make: Any) -> None:
    # guard: port 80 is nginx's normal server for the host (its location /, here with
    # backend-protocol HTTPS to the same TLS backend); passes on the old code too.
    env = await make(pass_annotations={"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"})
    r, w = await asyncio.open_connection("127.0.0.1", env.http_port)
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: pass.test\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(r.read(), 3)
    finally:
        w.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"backend")
    assert not getattr(env.proxy, "passthrough", ())


# --- the decisions (pure) ----------------------------------------------------------------------

def _hosts(*docs: str, enabled: bool = True) -> Any:
    return passthrough_hosts(RouteTable.build(_res(*docs)), enabled)


def test_first_ingress_of_a_host_decides() -> None:
    older = _ingress("a", "x.test", "svc", stamp="2020-01-01T00:00:00Z")
    newer = _ingress("b", "x.test", "svc", path="/b", annotations={_ANN: "true"},
                     stamp="2021-01-01T00:00:00Z")
    got = _hosts(older, newer)
    assert dict(got.routes) == {}
    assert any("older Ingress default/a" in w for w in got.warnings), got.warnings
    # the other way round: the older one asks, the newer one's "/" is not needed
    older = _ingress("a", "x.test", "svc", annotations={_ANN: "true"}, stamp="2020-01-01T00:00:00Z")
    newer = _ingress("b", "x.test", "svc2", path="/b", stamp="2021-01-01T00:00:00Z")
    got = _hosts(older, newer)
    assert list(got.routes) == ["x.test"] and got.routes["x.test"].service == "svc"


def test_root_rule_from_another_ingress_serves() -> None:
    older = _ingress("a", "x.test", "api", path="/api", annotations={_ANN: "true"},
                     stamp="2020-01-01T00:00:00Z")
    newer = _ingress("b", "x.test", "web", stamp="2021-01-01T00:00:00Z")
    got = _hosts(older, newer)
    assert got.routes["x.test"].service == "web"


@pytest.mark.parametrize("path_type, served", [("Prefix", True), ("ImplementationSpecific", True),
                                                ("Exact", False)])
def test_root_rule_path_types(path_type: str, served: bool) -> None:
    got = _hosts(_ingress("a", "x.test", "svc", path_type=path_type, annotations={_ANN: "true"}))
    assert "x.test" in got.routes
    assert (got.routes["x.test"] is not None) is served


def test_wildcard_invalid_and_canary_are_ignored_with_warnings() -> None:
    got = _hosts(_ingress("w", "*.x.test", "svc", annotations={_ANN: "true"}),
                 _ingress("v", "v.test", "svc", annotations={_ANN: "yes"}),
                 _ingress("c", "v.test", "svc", annotations={_ANN: "true",
                                                             "nginx.ingress.kubernetes.io/canary": "true"}))
    assert dict(got.routes) == {}
    text = "\n".join(got.warnings)
    assert "wildcard" in text and "invalid value 'yes'" in text and "canary" in text


def test_false_means_no_passthrough_and_off_means_none() -> None:
    assert dict(_hosts(_ingress("a", "x.test", "svc", annotations={_ANN: "false"})).routes) == {}
    got = _hosts(_ingress("a", "x.test", "svc", annotations={_ANN: "True"}), enabled=False)
    assert dict(got.routes) == {} and "SSL passthrough is off" in got.warnings[0]


def test_decide() -> None:
    res = _res(_ingress("a", "x.test", "svc", annotations={_ANN: "true"}), _service("svc", 9443),
               _ingress("b", "y.test", "none", annotations={_ANN: "true"}), _service("none", None),
               _ingress("c", "z.test", "svc"))
    router = Router(res)
    routes = PassthroughRoutes(True)
    assert routes.decide(router, b"x.test", "10.0.0.1") == ("127.0.0.1", 9443)
    assert routes.decide(router, b"X.TEST", None) == ("127.0.0.1", 9443)
    assert routes.decide(router, b"y.test", None) == CLOSE       # no ready endpoint
    assert routes.decide(router, b"z.test", None) is None        # not a passthrough host
    assert routes.decide(router, None, None) is None
    assert routes.decide(router, b"\xff.test", None) is None
    assert PassthroughRoutes(False).decide(router, b"x.test", None) is None


def test_annotation_is_no_longer_reported_as_not_implemented() -> None:
    assert "ssl-passthrough" in IMPLEMENTED
    opts = parse_route_options({_ANN: "true"}, "/", ProxySettings(), where="Ingress default/a")
    assert not any("ssl-passthrough" in w for w in opts.warnings), opts.warnings


# --- serve --------------------------------------------------------------------------------------

def test_serve_flag_needs_tls_listen(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from ingresslib._cli import main

    (tmp_path / "ing.yaml").write_text(_ingress("a", "x.test", "svc"))
    assert main(["serve", "-f", str(tmp_path), "--enable-ssl-passthrough"]) == 2
    assert "--enable-ssl-passthrough needs --tls-listen" in capsys.readouterr().err


class _Stop(Exception):
    pass


@pytest.mark.parametrize("flag", [True, False])
def test_serve_flag_reaches_the_server(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                       flag: bool) -> None:
    from ingresslib import _cli
    from ingresslib.proxy import _server

    seen: list[bool] = []

    class Recording(ProxyServer):
        def __init__(self, *a: Any, **kw: Any) -> None:
            seen.append(kw.get("ssl_passthrough", False))
            raise _Stop

    monkeypatch.setattr(_server, "ProxyServer", Recording)
    (tmp_path / "ing.yaml").write_text(_ingress("a", "x.test", "svc"))
    argv = ["serve", "-f", str(tmp_path), "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"]
    with pytest.raises(_Stop):
        _cli.main(argv + (["--enable-ssl-passthrough"] if flag else []))
    assert seen == [flag]


@pytest.mark.asyncio
async def test_router_update_is_followed(make: Any) -> None:
    import dataclasses

    env = await make()
    router = env.proxy.router
    res = router.resources
    plain = _res(_ingress("pass", "pass.test", "pass")).ingresses
    router.update(dataclasses.replace(
        res, ingresses=tuple(i for i in res.ingresses if i.metadata.name != "pass") + plain))
    der, _ = await _tls_request(env.tls_port, "pass.test", None,
                                b"GET /x HTTP/1.1\r\nHost: nowhere\r\nConnection: close\r\n\r\n")
    assert der != env.backend_der            # terminated here now
    router.update(res)                       # and back
    der, _ = await _tls_request(env.tls_port, "pass.test", None)
    assert der == env.backend_der
