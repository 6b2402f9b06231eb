"""Session 26: client certificate authentication (``auth-tls-*``).

ingress-nginx: annotations/authtls/main.go ``Parse`` (the annotations, their defaults and
validators), controller.go ``createServers`` (a server takes its ``CertificateAuth`` from the
first Ingress that sets it for the host), nginx.tmpl (``ssl_client_certificate``,
``ssl_verify_client``, ``ssl_verify_depth``, ``ssl_crl``, ``error_page 495 496``, the match-cn
``if``, the ``ssl-client-*`` proxy_set_header lines) and nginx's ``ngx_http_process_request``
(400 "No required SSL certificate was sent" / "The SSL certificate error", 421 for another
server name than the handshake's). Before this session ingresslib did not implement them (the
routes of such an Ingress answered 503): every test here but those marked "guard" fails there.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
import pytest_asyncio
import trustme

from ingresslib import parse_manifests
from ingresslib._router import Router
from ingresslib._tls import CertificateStore
from ingresslib.proxy import Proxy, SendDownstream
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings

P = "nginx.ingress.kubernetes.io/"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


# --- manifests ---------------------------------------------------------------------------------

def _ingress(name: str, host: str, port: int, *, annotations: dict[str, str] | None = None,
             path: str = "/", stamp: str | None = None, tls: bool = True) -> str:
    ann = "".join(f"\n    {k}: {v!r}" for k, v in (annotations or {}).items())
    meta = f"metadata:\n  name: {name}\n  namespace: default"
    if stamp:
        meta += f"\n  creationTimestamp: {stamp!r}"
    if ann:
        meta += "\n  annotations:" + ann
    tls_part = f"\n  tls:\n  - hosts: [{host}]\n    secretName: tls-{host.replace('.', '-')}" \
        if tls else ""
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
{meta}
spec:{tls_part}
  rules:
  - host: {host!r}
    http:
      paths:
      - path: {path}
        pathType: Prefix
        backend: {{service: {{name: {name}-svc, port: {{number: 80}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}-svc, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-svc-1, namespace: default, labels: {{kubernetes.io/service-name: {name}-svc}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def _secret(name: str, data: dict[str, bytes], kind: str = "Opaque") -> str:
    body = "".join(f"\n  {k}: {base64.b64encode(v).decode()}" for k, v in data.items())
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: {kind}
data:{body}
"""


def _tls_secret(host: str, ca: trustme.CA) -> str:
    leaf = ca.issue_cert(host)
    return _secret(f"tls-{host.replace('.', '-')}", {
        "tls.crt": b"".join(p.bytes() for p in leaf.cert_chain_pems),
        "tls.key": leaf.private_key_pem.bytes()}, "kubernetes.io/tls")


# --- certificates --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def other_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_leaf(client_ca: trustme.CA) -> trustme.LeafCert:
    return client_ca.issue_cert("client.test", common_name="client-one")


def _client_ctx(server_ca: trustme.CA, leaf: trustme.LeafCert | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    server_ca.configure_trust(ctx)
    if leaf is not None:
        leaf.configure_cert(ctx)
    return ctx


# --- servers -----------------------------------------------------------------------------------

class _Env:
    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.servers: list[asyncio.Server] = []
        self.proxy: ProxyServer | None = None
        self.backend_port = 0
        self.res: Any = None

    def update(self, res: Any) -> None:
        """What ``serve`` does on a change: the store and the router see the new objects."""
        assert self.proxy is not None
        self.proxy.cert_store.update(res)
        self.proxy.router.update(res)

    def port(self, scheme: str) -> int:
        assert self.proxy is not None
        return [a for a in self.proxy.addresses if a[0] == scheme][0][2]

    def upstream_headers(self) -> dict[str, str]:
        [head] = self.heads
        lines = head.decode("latin-1").split("\r\n")[1:]
        return {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}


@pytest_asyncio.fixture
async def make(server_ca: trustme.CA, client_ca: trustme.CA) -> AsyncIterator[Any]:
    envs: list[_Env] = []

    async def build(docs: Any, *, ca_secret: bool = True, crl: bytes | None = None) -> _Env:
        env = _Env()
        envs.append(env)

        async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                env.heads.append(await r.readuntil(b"\r\n\r\n"))
                w.write(_OK)
                await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                w.close()

        srv = await asyncio.start_server(backend, "127.0.0.1", 0)
        env.servers.append(srv)
        env.backend_port = port = srv.sockets[0].getsockname()[1]
        extra = []
        if ca_secret:
            data = {"ca.crt": client_ca.cert_pem.bytes()}
            if crl is not None:
                data["ca.crl"] = crl
            extra.append(_secret("client-ca", data))
        res = env.res = parse_manifests("---\n".join([*docs(port), *extra]))
        store = CertificateStore()
        store.update(res)
        env.proxy = ProxyServer(Router(res), cert_store=store, client_header_timeout=3)
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


async def _get(env: _Env, ctx: ssl.SSLContext | None, sni: str, host: str | None = None,
               path: str = "/", extra: str = "") -> bytes:
    """The whole answer; b"" when the connection failed (a handshake refused)."""
    port = env.port("https" if ctx is not None else "http")
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=sni if ctx is not None else None), 3)
        w.write(f"GET {path} HTTP/1.1\r\nHost: {host or sni}\r\n{extra}"
                "Connection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), 3)
        w.close()
        return data
    except (ssl.SSLError, ConnectionError, OSError):
        return b""


def _auth(**more: str) -> dict[str, str]:
    return {P + "auth-tls-secret": "default/client-ca", **{P + k.replace("_", "-"): v
                                                            for k, v in more.items()}}


def _two_hosts(server_ca: trustme.CA, auth: dict[str, str]) -> Any:
    return lambda port: [_ingress("a", "a.test", port, annotations=auth),
                         _ingress("b", "b.test", port),
                         _tls_secret("a.test", server_ca), _tls_secret("b.test", server_ca)]


# --- end to end through ProxyServer --------------------------------------------------------------

@pytest.mark.asyncio
async def test_verified_certificate_reaches_the_backend_with_nginx_headers(
        make: Any, server_ca: trustme.CA, client_leaf: trustme.LeafCert) -> None:
    env = await make(_two_hosts(server_ca, _auth(auth_tls_pass_certificate_to_upstream="true")))
    answer = await _get(env, _client_ctx(server_ca, client_leaf), "a.test")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    h = env.upstream_headers()
    assert h["ssl-client-verify"] == "SUCCESS"
    assert h["ssl-client-subject-dn"].startswith("CN=client-one,")
    assert h["ssl-client-issuer-dn"]
    pem = client_leaf.cert_chain_pems[0].bytes().decode()
    # $ssl_client_escaped_cert: the PEM, URL-encoded (NGX_ESCAPE_URI_COMPONENT)
    assert h["ssl-client-cert"] == quote(pem, safe="")
    assert ssl.PEM_cert_to_DER_cert(unquote(h["ssl-client-cert"])) == \
        ssl.PEM_cert_to_DER_cert(pem)


@pytest.mark.asyncio
async def test_guard_host_without_auth_on_the_same_listener_is_not_asked_for_a_certificate(
        make: Any, server_ca: trustme.CA, other_ca: trustme.CA) -> None:
    env = await make(_two_hosts(server_ca, _auth()))
    # A certificate the CA would refuse: a host that asked for it would fail the handshake.
    stranger = other_ca.issue_cert("stranger.test")
    answer = await _get(env, _client_ctx(server_ca, stranger), "b.test")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert not any(k.startswith("ssl-client-") for k in env.upstream_headers())


@pytest.mark.asyncio
async def test_no_certificate_with_verify_on_answers_400(
        make: Any, server_ca: trustme.CA) -> None:
    env = await make(_two_hosts(server_ca, _auth()))
    answer = await _get(env, _client_ctx(server_ca, None), "a.test")
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"No required SSL certificate was sent" in answer
    assert env.heads == []


@pytest.mark.asyncio
async def test_certificate_of_another_ca_never_reaches_the_backend(
        make: Any, server_ca: trustme.CA, other_ca: trustme.CA) -> None:
    env = await make(_two_hosts(server_ca, _auth(auth_tls_verify_client="optional")))
    answer = await _get(env, _client_ctx(server_ca, other_ca.issue_cert("x.test")), "a.test")
    assert answer == b""   # the handshake fails (no verify callback in Python)
    assert env.heads == []


@pytest.mark.asyncio
async def test_optional_without_certificate_passes_with_verify_none(
        make: Any, server_ca: trustme.CA) -> None:
    env = await make(_two_hosts(server_ca, _auth(auth_tls_verify_client="optional")))
    answer = await _get(env, _client_ctx(server_ca, None), "a.test",
                        extra="ssl-client-verify: SUCCESS\r\nssl-client-subject-dn: CN=admin\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    h = env.upstream_headers()
    assert h["ssl-client-verify"] == "NONE"   # the forged SUCCESS is not passed
    assert "ssl-client-subject-dn" not in h


@pytest.mark.asyncio
async def test_verify_off_asks_nothing_and_says_none(
        make: Any, server_ca: trustme.CA, client_leaf: trustme.LeafCert) -> None:
    env = await make(_two_hosts(server_ca, _auth(auth_tls_verify_client="off")))
    answer = await _get(env, _client_ctx(server_ca, client_leaf), "a.test")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert env.upstream_headers()["ssl-client-verify"] == "NONE"


@pytest.mark.asyncio
async def test_forged_client_cert_headers_are_stripped_on_a_host_without_auth(
        make: Any, server_ca: trustme.CA) -> None:
    env = await make(_two_hosts(server_ca, _auth()))
    answer = await _get(env, _client_ctx(server_ca, None), "b.test",
                        extra="SSL-Client-Verify: SUCCESS\r\nssl-client-cert: x\r\n"
                              "ssl-client-issuer-dn: CN=ca\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert not any(k.startswith("ssl-client-") for k in env.upstream_headers())


@pytest.mark.asyncio
@pytest.mark.parametrize(("pattern", "status"), [("CN=client-one", b"200"),
                                                 ("CN=(someone|else)$", b"403")])
async def test_match_cn(make: Any, server_ca: trustme.CA, client_leaf: trustme.LeafCert,
                        pattern: str, status: bytes) -> None:
    env = await make(_two_hosts(server_ca, _auth(auth_tls_match_cn=pattern)))
    answer = await _get(env, _client_ctx(server_ca, client_leaf), "a.test")
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    assert len(env.heads) == (status == b"200")


@pytest.mark.asyncio
async def test_sni_of_another_host_is_misdirected(
        make: Any, server_ca: trustme.CA, client_leaf: trustme.LeafCert) -> None:
    # The handshake for b.test verified nothing: Host a.test cannot use that connection.
    env = await make(_two_hosts(server_ca, _auth()))
    answer = await _get(env, _client_ctx(server_ca, client_leaf), "b.test", host="a.test")
    assert answer.startswith(b"HTTP/1.1 421"), answer
    assert env.heads == []


@pytest.mark.asyncio
async def test_error_page_redirects(make: Any, server_ca: trustme.CA) -> None:
    env = await make(_two_hosts(server_ca, _auth(
        auth_tls_error_page="https://login.test/cert-error")))
    answer = await _get(env, _client_ctx(server_ca, None), "a.test")
    assert answer.startswith(b"HTTP/1.1 302"), answer
    assert b"\r\nlocation: https://login.test/cert-error\r\n" in answer.lower()


@pytest.mark.asyncio
async def test_first_ingress_of_a_host_sets_its_server(
        make: Any, server_ca: trustme.CA) -> None:
    # The newer Ingress without auth-tls routes /open on the same host: nginx's server block
    # verifies every request of the host.
    def docs(port: int) -> list[str]:
        return [_ingress("a", "a.test", port, annotations=_auth(),
                         stamp="2020-01-01T00:00:00Z"),
                _ingress("a2", "a.test", port, path="/open", stamp="2021-01-01T00:00:00Z",
                         tls=False),
                _tls_secret("a.test", server_ca)]
    env = await make(docs)
    answer = await _get(env, _client_ctx(server_ca, None), "a.test", path="/open")
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert env.heads == []


@pytest.mark.asyncio
@pytest.mark.parametrize("secret", ["missing", "no-ca"])
async def test_guard_unusable_secret_denies_the_routes(
        make: Any, server_ca: trustme.CA, client_leaf: trustme.LeafCert, secret: str) -> None:
    def docs(port: int) -> list[str]:
        out = [_ingress("a", "a.test", port, annotations={P + "auth-tls-secret":
                                                          f"default/{secret}"}),
               _tls_secret("a.test", server_ca)]
        if secret == "no-ca":
            out.append(_secret("no-ca", {"other": b"x"}))
        return out
    env = await make(docs)
    answer = await _get(env, _client_ctx(server_ca, client_leaf), "a.test")
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert env.heads == []


@pytest.mark.asyncio
async def test_host_on_the_default_certificate_verifies_too(
        make: Any, server_ca: trustme.CA, client_leaf: trustme.LeafCert) -> None:
    # No spec.tls: the generated default certificate serves, nginx's server block still has
    # ssl_verify_client.
    env = await make(lambda port: [_ingress("a", "a.test", port, annotations=_auth(),
                                            tls=False)])
    ctx = _client_ctx(server_ca, client_leaf)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    answer = await _get(env, ctx, "a.test")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert env.upstream_headers()["ssl-client-verify"] == "SUCCESS"
    no_cert = ssl.create_default_context()
    no_cert.check_hostname = False
    no_cert.verify_mode = ssl.CERT_NONE
    assert (await _get(env, no_cert, "a.test")).startswith(b"HTTP/1.1 400")


@pytest.mark.asyncio
async def test_guard_tls_secret_without_ca_crt_denies_instead_of_serving_unverified(
        make: Any, server_ca: trustme.CA) -> None:
    # ingress-nginx: "Secret has no 'ca.crt' key, mutual authentication disabled" (served);
    # ingresslib fails closed (README's divergences).
    env = await make(lambda port: [
        _ingress("a", "a.test", port, annotations={P + "auth-tls-secret": "default/tls-a-test"}),
        _tls_secret("a.test", server_ca)])
    answer = await _get(env, _client_ctx(server_ca, None), "a.test")
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert env.heads == []


@pytest.mark.asyncio
async def test_secret_deleted_later_fails_closed_and_created_later_serves(
        make: Any, server_ca: trustme.CA, client_leaf: trustme.LeafCert) -> None:
    # The route table is kept when only a Secret changes: the host's configuration follows
    # the Secret at each update (never served unverified once the CA is gone).
    import dataclasses

    env = await make(_two_hosts(server_ca, _auth()))
    full = env.res
    gone = dataclasses.replace(full, secrets=tuple(
        x for x in full.secrets if x.metadata.name != "client-ca"))
    env.update(gone)
    answer = await _get(env, _client_ctx(server_ca, client_leaf), "a.test")
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert (await _get(env, _client_ctx(server_ca, None), "b.test")).startswith(b"HTTP/1.1 200")
    env.update(full)
    answer = await _get(env, _client_ctx(server_ca, client_leaf), "a.test")
    assert answer.startswith(b"HTTP/1.1 200"), answer


@pytest.mark.asyncio
async def test_chain_deeper_than_verify_depth_answers_400(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA) -> None:
    deep = client_ca.create_child_ca().create_child_ca().issue_cert("deep.test")
    env = await make(_two_hosts(server_ca, _auth()))   # depth 1: leaf, one CA, the anchor
    answer = await _get(env, _client_ctx(server_ca, deep), "a.test")
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"The SSL certificate error" in answer
    env2 = await make(_two_hosts(server_ca, _auth(auth_tls_verify_depth="2")))
    answer = await _get(env2, _client_ctx(server_ca, deep), "a.test")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert env2.upstream_headers()["ssl-client-verify"] == "SUCCESS"


@pytest.mark.asyncio
async def test_revoked_certificate_in_ca_crl_is_refused(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    revoked = client_ca.issue_cert("revoked.test")
    good = client_ca.issue_cert("good.test")
    ca_cert = x509.load_pem_x509_certificate(client_ca.cert_pem.bytes())
    key: Any = serialization.load_pem_private_key(client_ca.private_key_pem.bytes(), None)
    serial = x509.load_pem_x509_certificate(revoked.cert_chain_pems[0].bytes()).serial_number
    now = datetime.datetime.now(datetime.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
           .last_update(now - datetime.timedelta(days=1))
           .next_update(now + datetime.timedelta(days=1))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                    .revocation_date(now - datetime.timedelta(hours=1)).build())
           .sign(key, hashes.SHA256()))
    env = await make(_two_hosts(server_ca, _auth()),
                     crl=crl.public_bytes(serialization.Encoding.PEM))
    assert await _get(env, _client_ctx(server_ca, revoked), "a.test") == b""
    answer = await _get(env, _client_ctx(server_ca, good), "a.test")
    assert answer.startswith(b"HTTP/1.1 200"), answer


# --- the sans-IO core's per-request decisions ----------------------------------------------------

class _Routes:
    """A router of one route for any host whose endpoint is 127.0.0.1:9 (never contacted)."""

    def route(self, method: str, host: str, path: str, headers: Any, client_ip: Any) -> Any:
        from ingresslib._router import Decision  # noqa: F401  (shape only)
        return _Decision()

    def next_endpoint(self, decision: Any, tried: Any) -> None:
        return None


class _Match:
    annotations: dict[str, str] = {}
    ingress = "default/x"
    namespace = "default"
    path = "/"
    host = "a.test"


class _Decision:
    match = _Match()
    endpoint = ("127.0.0.1", 9)
    upstream = "default-x-80"


def _core_answer(auth: Any, cert: Any, *, tls: bool = True, head: str = "") -> tuple[bytes, Any]:
    from ingresslib.proxy import OpenUpstream, SendUpstream

    proxy = Proxy(_Routes(), client_auth=lambda host: auth if host == "a.test" else None)
    conn = proxy.connection(("192.0.2.1", 5000), tls=tls, now=0.0, client_cert=cert)
    acts = conn.receive_data(
        f"GET / HTTP/1.1\r\nHost: a.test\r\n{head}\r\n".encode(), now=0.0)
    out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    upstream = b"".join(a.data for a in acts if isinstance(a, SendUpstream))
    opened = any(isinstance(a, OpenUpstream) for a in acts)
    return out, (upstream if upstream else opened)


def _config(**kw: Any) -> Any:
    from ingresslib.proxy._clientcert import ClientCertAuth
    return ClientCertAuth("default/client-ca", "default/x", b"ca", None, **kw)


def test_core_no_certificate_with_on_is_400_and_optional_passes() -> None:
    from ingresslib.proxy._clientcert import ClientCert

    on = _config()
    out, reached = _core_answer(on, ClientCert(on.key))
    assert out.startswith(b"HTTP/1.1 400") and b"No required SSL certificate" in out
    assert b"\r\nconnection: close\r\n" in out.lower()   # NGX_HTTPS_NO_CERT: no keep-alive
    assert not reached
    opt = _config(verify_client="optional")
    out, reached = _core_answer(opt, ClientCert(opt.key))
    assert out == b"" and reached


def test_core_handshake_of_another_configuration_is_421() -> None:
    from ingresslib.proxy._clientcert import ClientCert

    on = _config()
    out, _ = _core_answer(on, ClientCert("another", "SUCCESS", "CN=x", "CN=ca"))
    assert out.startswith(b"HTTP/1.1 421")
    out, _ = _core_answer(on, None)   # the handshake verified nothing
    assert out.startswith(b"HTTP/1.1 421")


def test_core_failed_verification_is_400_or_the_error_page() -> None:
    from ingresslib.proxy._clientcert import ClientCert

    on = _config()
    failed = ClientCert(on.key, "FAILED:certificate chain too long", "CN=x", "CN=ca")
    out, _ = _core_answer(on, failed)
    assert out.startswith(b"HTTP/1.1 400") and b"The SSL certificate error" in out
    paged = _config(error_page="/cert-error")
    out, _ = _core_answer(paged, ClientCert(paged.key, "FAILED:x"))
    assert out.startswith(b"HTTP/1.1 302") and b"\r\nlocation: /cert-error\r\n" in out.lower()


def test_core_match_cn_on_plain_http_is_403() -> None:
    import regex
    auth = _config(match_cn=regex.compile("CN=client"))
    out, reached = _core_answer(auth, None, tls=False)
    assert out.startswith(b"HTTP/1.1 403") and not reached


def _pair(auth: Any, cert: Any, *, tls: bool = True) -> Any:
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from _proxy_harness import ProxyPair

    pair = ProxyPair(tls=tls)
    pair.proxy.client_auth = lambda host: auth if host == "a.test" else None
    pair.conn.client_cert = cert
    return pair


def test_core_sends_nginx_headers_and_drops_the_clients() -> None:
    from ingresslib.proxy._clientcert import ClientCert

    auth = _config(pass_cert=True)
    cert = ClientCert(auth.key, "SUCCESS", "CN=c,O=x", "CN=ca", "-----BEGIN%20X")
    forged = (b"ssl-client-verify: FAILED\r\nSSL-Client-Cert: forged\r\n"
              b"ssl-client-subject-dn: CN=admin\r\n")
    pair = _pair(auth, cert)
    pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n" + forged + b"\r\n")
    head = pair.upstream_bytes.split(b"\r\n\r\n")[0].lower()
    assert b"\r\nssl-client-cert: -----begin%20x\r\n" in head
    assert b"\r\nssl-client-verify: success\r\n" in head
    assert b"\r\nssl-client-subject-dn: cn=c,o=x\r\n" in head
    assert b"\r\nssl-client-issuer-dn: cn=ca\r\n" in head
    assert b"forged" not in head and b"admin" not in head and b"failed" not in head
    # another host of the same connection: no auth, nothing of the client's passed either
    pair = _pair(auth, cert)
    pair.send(b"GET / HTTP/1.1\r\nHost: b.test\r\n" + forged + b"\r\n")
    assert b"ssl-client" not in pair.upstream_bytes.lower()
    # plain HTTP to the host: nginx's $ssl_client_* are empty there, no header is sent
    pair = _pair(_config(verify_client="optional"), None, tls=False)
    pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n" + forged + b"\r\n")
    assert pair.upstream_bytes and b"ssl-client" not in pair.upstream_bytes.lower()


def test_guard_core_without_client_auth_or_for_a_host_it_does_not_know_fails_closed() -> None:
    # A driver that gives the core no client_auth (or a store that does not know the host:
    # a server-alias name) cannot have verified anything: the Ingress's routes answer 503.
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from _proxy_harness import ProxyPair, Route

    route = Route(annotations=_auth())
    pair = ProxyPair([route], tls=True)
    out = pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503") and not pair.opens
    pair = ProxyPair([route], tls=True)
    pair.proxy.client_auth = lambda host: None
    out = pair.send(b"GET / HTTP/1.1\r\nHost: alias.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503") and not pair.opens


# --- annotations --------------------------------------------------------------------------------

def test_annotations_are_implemented_and_parsed() -> None:
    from ingresslib.proxy._clientcert import AUTH_TLS_ANNOTATIONS, parse_auth_tls

    assert AUTH_TLS_ANNOTATIONS <= IMPLEMENTED
    opts = parse_route_options(_auth(), "/", ProxySettings(), where="Ingress default/a")
    assert not any("not implemented" in w for w in opts.warnings), opts.warnings
    got = parse_auth_tls({**_auth(), P + "auth-tls-verify-client": "sometimes",
                          P + "auth-tls-verify-depth": "0"}, P, "default", "default/a", None,
                         resolve=False)
    assert got is not None and got.denied is None
    assert [k for k, _ in got.warnings] == [P + "auth-tls-verify-client"]
    for bad in ({P + "auth-tls-match-cn": "client"}, {P + "auth-tls-error-page": "a b"},
                {P + "auth-tls-pass-certificate-to-upstream": "yes"},
                {P + "auth-tls-secret": "other/client-ca"}, {P + "auth-tls-secret": "client-ca"}):
        got = parse_auth_tls({**_auth(), **bad}, P, "default", "default/a", None, resolve=False)
        assert got is not None and got.denied is not None, bad


@pytest.mark.asyncio
async def test_guard_adapter_still_denies_auth_tls(client_ca: trustme.CA) -> None:
    # IngressASGI verifies no client certificate: its routes keep answering 503.
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from _proxy_harness import ingress_yaml
    from test_asgi_conformance import SERVICE, asgi_call

    manifests = ingress_yaml("admin", "a.test", _auth()) + SERVICE.replace("SVC", "web") \
        + "---\n" + _secret(
        "client-ca", {"ca.crt": client_ca.cert_pem.bytes()})
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: a.test", manifests=manifests)
    assert got.status == 503 and not got.app_ran
