"""Session 26, round 2: a security review of client certificate authentication (``auth-tls-*``).

The invariant: no request for a host with ``auth-tls-verify-client: on`` reaches its backend
without a certificate that host's CA verified, and no backend is told ``ssl-client-verify:
SUCCESS`` for a certificate that was not verified against its host's CA (within
``auth-tls-verify-depth``). nginx is the reference: ``ngx_http_process_request`` (the client
verify checks, ``ngx_ssl_remove_cached_session`` for a refused session),
``ngx_ssl_get_subject_dn`` (``X509_NAME_print_ex(..., XN_FLAG_RFC2253)``), and the match-cn
``if ($ssl_client_s_dn !~ ...)`` of ingress-nginx's nginx.tmpl (a PCRE regex).

Servers listen on 127.0.0.1 only; the clients here are blocking ``ssl`` sockets run in a
thread (``asyncio.to_thread``), so that a TLS session can be offered again (resumption).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import trustme

from ingresslib import parse_manifests
from ingresslib._router import Router
from ingresslib._tls import CertificateStore
from ingresslib.proxy._server import ProxyServer

P = "nginx.ingress.kubernetes.io/"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


# --- manifests ---------------------------------------------------------------------------------

def _ingress(name: str, host: str, port: int, annotations: dict[str, str] | None = None) -> str:
    ann = "".join(f"\n    {k}: {v!r}" for k, v in (annotations or {}).items())
    meta = f"metadata:\n  name: {name}\n  namespace: default"
    if ann:
        meta += "\n  annotations:" + ann
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
{meta}
spec:
  tls:
  - hosts: [{host}]
    secretName: tls-{name}
  rules:
  - host: {host!r}
    http:
      paths:
      - path: /
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


def _tls_secret(name: str, host: str, ca: trustme.CA) -> str:
    leaf = ca.issue_cert(host)
    return _secret(f"tls-{name}", {
        "tls.crt": b"".join(p.bytes() for p in leaf.cert_chain_pems),
        "tls.key": leaf.private_key_pem.bytes()}, "kubernetes.io/tls")


def _auth(**more: str) -> dict[str, str]:
    return {P + "auth-tls-secret": "default/client-ca", **{P + k.replace("_", "-"): v
                                                            for k, v in more.items()}}


# --- certificates --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


def _client_ctx(server_ca: trustme.CA, leaf: trustme.LeafCert | None,
                version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    server_ca.configure_trust(ctx)
    if leaf is not None:
        leaf.configure_cert(ctx)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def _signed_by(ca: trustme.CA, subject: Any) -> trustme.LeafCert:
    """A client certificate with ``subject`` (an ``x509.Name``) issued by ``ca``, as a
    ``trustme.LeafCert`` (trustme names its leaves itself)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key: Any = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return trustme.LeafCert(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM), [])


# --- servers -----------------------------------------------------------------------------------

class _Env:
    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.servers: list[asyncio.Server] = []
        self.proxy: ProxyServer | None = None
        #: The manifests again, with another ``client-ca`` Secret's data.
        self.resources: Any = None

    def update(self, ca_secret: dict[str, bytes]) -> None:
        """What ``serve`` does on a change: the router and the store see the new objects."""
        assert self.proxy is not None
        res = self.resources(ca_secret)
        self.proxy.router.update(res)
        self.proxy.cert_store.update(res)

    @property
    def https(self) -> int:
        assert self.proxy is not None
        return [a for a in self.proxy.addresses if a[0] == "https"][0][2]

    def upstream_headers(self, i: int = -1) -> dict[str, str]:
        lines = self.heads[i].decode("latin-1").split("\r\n")[1:]
        return {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}


@pytest_asyncio.fixture
async def make(server_ca: trustme.CA, client_ca: trustme.CA) -> AsyncIterator[Any]:
    envs: list[_Env] = []

    async def build(auth: dict[str, str]) -> _Env:
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
        port = srv.sockets[0].getsockname()[1]
        server_docs = [_tls_secret("a", "a.test", server_ca),
                       _tls_secret("b", "b.test", server_ca)]

        def resources(ca_secret: dict[str, bytes]) -> Any:
            return parse_manifests("---\n".join([
                _ingress("a", "a.test", port, auth), _ingress("b", "b.test", port),
                *server_docs, _secret("client-ca", ca_secret)]))

        env.resources = resources
        res = resources({"ca.crt": client_ca.cert_pem.bytes()})
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


def _exchange(port: int, ctx: ssl.SSLContext, sni: str | None, request: bytes,
              session: ssl.SSLSession | None = None
              ) -> tuple[bytes, ssl.SSLSession | None, bool]:
    """One TLS connection (blocking; run in a thread): the whole answer, the session (read
    after the answer: TLS 1.3 tickets come after the handshake) and whether it was resumed."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni, session=session) as tls:
            tls.sendall(request)
            out = b""
            try:
                while True:
                    data = tls.recv(65536)
                    if not data:
                        break
                    out += data
            except (ssl.SSLError, OSError):
                pass
            return out, tls.session, tls.session_reused


def _get(host: str = "a.test") -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


# --- TLS session resumption --------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_resumed_session_of_a_chain_too_deep_is_still_refused(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA,
        version: ssl.TLSVersion) -> None:
    # A certificate verified by the CA but through a chain deeper than auth-tls-verify-depth
    # (1): nginx answers 400 and removes the session from its cache
    # (ngx_http_process_request: "ngx_ssl_remove_cached_session"). A resumed session carries
    # no chain to count again: under TLS 1.3 (its tickets are new sessions, with new ids)
    # the resumed request reached the backend with ssl-client-verify: SUCCESS.
    deep = client_ca.create_child_ca().create_child_ca().issue_cert("deep.test")
    env = await make(_auth())
    ctx = _client_ctx(server_ca, deep, version)
    first, session, _ = await asyncio.to_thread(_exchange, env.https, ctx, "a.test", _get())
    assert first.startswith(b"HTTP/1.1 400"), first
    assert session is not None
    again, _, reused = await asyncio.to_thread(_exchange, env.https, ctx, "a.test", _get(),
                                               session)
    assert reused   # (what this test is about: the session was resumed)
    assert again.startswith(b"HTTP/1.1 400"), again
    assert b"The SSL certificate error" in again
    assert env.heads == []


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_guard_resumed_session_of_a_verified_certificate_still_passes(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA,
        version: ssl.TLSVersion) -> None:
    leaf = client_ca.issue_cert("ok.test", common_name="client-ok")
    env = await make(_auth())
    ctx = _client_ctx(server_ca, leaf, version)
    first, session, _ = await asyncio.to_thread(_exchange, env.https, ctx, "a.test", _get())
    assert first.startswith(b"HTTP/1.1 200"), first
    again, _, reused = await asyncio.to_thread(_exchange, env.https, ctx, "a.test", _get(),
                                               session)
    assert reused
    assert again.startswith(b"HTTP/1.1 200"), again
    h = env.upstream_headers()
    assert h["ssl-client-verify"] == "SUCCESS"
    assert h["ssl-client-subject-dn"].startswith("CN=client-ok,")


@pytest.mark.asyncio
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_guard_session_of_another_host_is_not_resumed_into_the_protected_one(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA,
        version: ssl.TLSVersion) -> None:
    # A session of b.test (no client authentication) offered under the SNI a.test: the
    # protected host's context has a session cache of its own, the handshake is a full one.
    env = await make(_auth())
    ctx = _client_ctx(server_ca, None, version)
    first, session, _ = await asyncio.to_thread(_exchange, env.https, ctx, "b.test",
                                                _get("b.test"))
    assert first.startswith(b"HTTP/1.1 200"), first
    ctx.check_hostname = False
    again, _, reused = await asyncio.to_thread(_exchange, env.https, ctx, "a.test", _get(),
                                               session)
    assert not reused
    assert again.startswith(b"HTTP/1.1 400"), again   # no certificate: verify on
    assert len(env.heads) == 1


# --- the DN strings ----------------------------------------------------------------------------

def _odd_subject() -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    A, R = x509.NameAttribute, x509.RelativeDistinguishedName
    return x509.Name([
        R([A(NameOID.COUNTRY_NAME, "DE")]),
        R([A(NameOID.ORGANIZATION_NAME, 'O, Inc+"x"\\')]),
        R([A(NameOID.EMAIL_ADDRESS, "a@b.c")]),
        # A multi-valued RDN; a CN with a non-ASCII letter, CR/LF and a would-be header.
        R([A(NameOID.COMMON_NAME, "é\r\nX-Evil: 1"), A(NameOID.USER_ID, "u")])])


#: What ``openssl x509 -noout -subject -nameopt RFC2253`` (OpenSSL 3.0) prints for
#: ``_odd_subject``: nginx's ``$ssl_client_s_dn`` (X509_NAME_print_ex, XN_FLAG_RFC2253).
_ODD_DN = 'CN=\\C3\\A9\\0D\\0AX-Evil: 1+UID=u,emailAddress=a@b.c,O=O\\, Inc\\+\\"x\\"\\\\,C=DE'


@pytest.mark.asyncio
async def test_subject_dn_is_printed_as_nginx_prints_it(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA) -> None:
    # Before: cryptography's rfc4514_string: "1.2.840.113549.1.9.1=a@b.c", the CN's "é" and
    # CR/LF as they are (escaped for the header line only), "CN=...+UID=u" in another order.
    leaf = _signed_by(client_ca, _odd_subject())
    env = await make(_auth())
    answer, _, _ = await asyncio.to_thread(
        _exchange, env.https, _client_ctx(server_ca, leaf), "a.test", _get())
    assert answer.startswith(b"HTTP/1.1 200"), answer
    [head] = env.heads
    assert b"\r\nX-Evil" not in head and b"\n" not in head.replace(b"\r\n", b"")
    h = env.upstream_headers()
    assert h["ssl-client-verify"] == "SUCCESS"
    assert h["ssl-client-subject-dn"] == _ODD_DN
    assert h["ssl-client-issuer-dn"].startswith("OU=Testing CA #")


@pytest.mark.asyncio
async def test_match_cn_runs_on_nginx_s_dn(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA) -> None:
    # ingress-nginx's docs match on the e-mail address too; before, the DN said
    # "1.2.840.113549.1.9.1=a@b.c" and this certificate was refused 403.
    leaf = _signed_by(client_ca, _odd_subject())
    env = await make(_auth(auth_tls_match_cn="CN=[^,]*,emailAddress=a@b.c,"))
    answer, _, _ = await asyncio.to_thread(
        _exchange, env.https, _client_ctx(server_ca, leaf), "a.test", _get())
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert len(env.heads) == 1


def _dn_of(subject: Any) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ingresslib._tls import _issuer_subject, rfc2253

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return rfc2253(_issuer_subject(cert.public_bytes(serialization.Encoding.DER))[1])


def test_dn_escapes_and_names_as_openssl() -> None:
    # Each expected string is what OpenSSL 3.0 prints with -nameopt RFC2253.
    from cryptography import x509
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID

    A = x509.NameAttribute
    cases = [
        ([A(NameOID.COMMON_NAME, "#lead ")], "CN=\\#lead\\ "),
        ([A(NameOID.COMMON_NAME, "#")], "CN=#"),   # (do_buf: the last flag replaces the first)
        ([A(NameOID.COMMON_NAME, " ")], "CN=\\ "),
        ([A(NameOID.COMMON_NAME, "a\x00z\x7f;<>=")], "CN=a\\00z\\7F\\;\\<\\>="),
        ([A(NameOID.COMMON_NAME, "a\u2028b\x85c")], "CN=a\\E2\\80\\A8b\\C2\\85c"),
        ([A(NameOID.COMMON_NAME, "bmp é 日", _type=_ASN1Type.BMPString)],
         "CN=bmp \\C3\\A9 \\E6\\97\\A5"),
        ([A(NameOID.COMMON_NAME, "u 😀", _type=_ASN1Type.UniversalString)],
         "CN=u \\F0\\9F\\98\\80"),
        ([A(NameOID.SERIAL_NUMBER, "123"), A(NameOID.TITLE, "t"), A(NameOID.GIVEN_NAME, "g"),
          A(NameOID.SURNAME, "s"), A(NameOID.DOMAIN_COMPONENT, "dc"),
          A(NameOID.STREET_ADDRESS, "st")],
         "street=st,DC=dc,SN=s,GN=g,title=t,serialNumber=123"),
        ([A(x509.ObjectIdentifier("1.2.3.4"), "zz"), A(NameOID.COMMON_NAME, "x")],
         "CN=x,1.2.3.4=#0C027A7A"),
        ([A(NameOID.X500_UNIQUE_IDENTIFIER, b"\x01\x02", _type=_ASN1Type.BitString)],
         "x500UniqueIdentifier=#03020102"),   # (as cryptography encodes it)
    ]
    for attrs, expected in cases:
        assert _dn_of(x509.Name(attrs)) == expected, (attrs, expected)


# --- auth-tls-match-cn: nginx's PCRE, not the regex module's extensions ------------------------

@pytest.mark.asyncio
async def test_match_cn_braces_are_literal_as_in_pcre_not_fuzzy(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA) -> None:
    # "{e}" is no quantifier in PCRE (nginx) nor RE2 (ingress-nginx's validator): a literal.
    # The regex module read it as fuzzy matching (any number of errors): CN=xxmin passed.
    env = await make(_auth(auth_tls_match_cn="CN=(admin){e}"))
    near = client_ca.issue_cert("near.test", common_name="xxmin")
    answer, _, _ = await asyncio.to_thread(
        _exchange, env.https, _client_ctx(server_ca, near), "a.test", _get())
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert env.heads == []
    literal = client_ca.issue_cert("lit.test", common_name="admin{e}")
    answer, _, _ = await asyncio.to_thread(
        _exchange, env.https, _client_ctx(server_ca, literal), "a.test", _get())
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_match_cn_quantifiers_stay_quantifiers() -> None:
    from ingresslib.proxy._clientcert import pcre_braces

    assert pcre_braces("CN=a{2}b{1,}c{1,3}") == "CN=a{2}b{1,}c{1,3}"
    assert pcre_braces("CN=a{,3}") == "CN=a\\{,3}"     # PCRE < 10.43 and RE2: literal
    assert pcre_braces("CN=[{]\\{x") == "CN=[{]\\{x"   # in a class, escaped: unchanged
    assert pcre_braces("CN=[]{]{") == "CN=[]{]\\{"


# --- run-time changes --------------------------------------------------------------------------

def _crl_revoking(ca: trustme.CA, leaf: trustme.LeafCert) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key: Any = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    serial = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number
    now = datetime.datetime.now(datetime.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
           .last_update(now - datetime.timedelta(days=1))
           .next_update(now + datetime.timedelta(days=1))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                    .revocation_date(now - datetime.timedelta(hours=1)).build())
           .sign(key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


@pytest.mark.asyncio
@pytest.mark.parametrize("change", ["another CA", "CRL revokes it", "Secret emptied"])
async def test_guard_open_connection_is_rechecked_after_the_secret_changes(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA, change: str) -> None:
    # A keep-alive connection verified against the old ca.crt: its next request is judged by
    # the host's configuration now (the handshake's no longer matches: 421; none usable: 503).
    leaf = client_ca.issue_cert("keep.test", common_name="keeper")
    env = await make(_auth())
    r, w = await asyncio.open_connection("127.0.0.1", env.https,
                                         ssl=_client_ctx(server_ca, leaf),
                                         server_hostname="a.test")
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200"), head
        await asyncio.wait_for(r.readexactly(2), 3)
        if change == "another CA":
            env.update({"ca.crt": trustme.CA().cert_pem.bytes()})
        elif change == "CRL revokes it":
            env.update({"ca.crt": client_ca.cert_pem.bytes(),
                        "ca.crl": _crl_revoking(client_ca, leaf)})
        else:
            env.update({"other": b"x"})
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(r.read(), 3)
    finally:
        w.close()
    expected = b"HTTP/1.1 503" if change == "Secret emptied" else b"HTTP/1.1 421"
    assert answer.startswith(expected), answer
    assert len(env.heads) == 1


# --- the client's own ssl-client-* headers -----------------------------------------------------

@pytest.mark.parametrize("settings", [{"enable_underscores_in_headers": True},
                                      {"ignore_invalid_headers": False}])
def test_underscore_spellings_of_client_cert_headers_are_dropped_too(
        settings: dict[str, bool]) -> None:
    # ssl_client_verify and ssl-client-verify are both HTTP_SSL_CLIENT_VERIFY to a CGI/WSGI
    # backend: with underscores passed (enable-underscores-in-headers, or
    # ignore-invalid-headers "false"), the client's "ssl_client_verify: SUCCESS" reached the
    # backend, where the dash spelling is dropped on every route (README's divergences), as
    # the proxy's other headers' underscore spellings are (proxy/_headers.py
    # ``odd_name_dropped``).
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from _proxy_harness import ProxyPair

    from ingresslib.proxy._settings import ProxySettings

    pair = ProxyPair(settings=ProxySettings(**settings), tls=True)
    pair.send(b"GET / HTTP/1.1\r\nHost: b.test\r\nssl_client_verify: SUCCESS\r\n"
              b"SSL_Client_Subject_DN: CN=admin\r\nssl_client-cert: x\r\n"
              b"ssl-client_issuer-dn: CN=ca\r\nx_other: kept\r\n\r\n")
    head = pair.upstream_bytes.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"get / http/1.1"), head
    assert b"x_other: kept" in head   # (underscores are passed: what this is about)
    assert b"ssl" not in head.replace(b"x_other", b""), head


# --- which handshake a request may use ---------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize(("sni", "host", "status"), [
    ("A.Test", "a.test", b"200"), ("a.test.", "A.TEST.:443", b"200"),
    (None, "a.test", b"421"), ("b.test", "a.test.", b"421"), ("a.test", "b.test", b"200")])
async def test_guard_sni_spellings_and_hosts(
        make: Any, server_ca: trustme.CA, client_ca: trustme.CA, sni: str | None, host: str,
        status: bytes) -> None:
    leaf = client_ca.issue_cert("c.test", common_name="spelled")
    env = await make(_auth())
    ctx = _client_ctx(server_ca, leaf)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # (without SNI: the default certificate)
    answer, _, _ = await asyncio.to_thread(_exchange, env.https, ctx, sni, _get(host))
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    if status == b"200":
        h = env.upstream_headers()
        # a.test's backend is told of the certificate; b.test's (no auth-tls) of nothing
        assert h.get("ssl-client-verify") == ("SUCCESS" if host.startswith(("a", "A"))
                                              else None)
    else:
        assert env.heads == []
