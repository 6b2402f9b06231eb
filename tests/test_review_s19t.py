"""Session 19 review of TLS termination (helper Q19t).

A Secret whose PEM is cut short or damaged (a truncated copy, a line lost in an edit, a second
certificate of the chain missing its END line) was reported with OpenSSL's bare words, "unusable
certificate: SSLError: [SSL] PEM lib (_ssl.c:3905)" or "[PEM: BAD_END_LINE] bad end line": they
name neither tls.crt nor tls.key, although ``_unusable`` promises to name the key at fault (and
does for a missing BEGIN line, a swapped pair, an encrypted key). OpenSSL reads both halves as one
file; a truncated tls.key even fails while the chain is read. The tests marked "fails before"
failed on the code before this session (checked against a copy of the old ``_tls.py``)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore, certificate_problems
from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter
from tests.test_tls import _ingress, _pems, _secret


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _cut(pem: bytes) -> bytes:
    """The PEM without its last line (the END line lost)."""
    return b"".join(pem.splitlines(True)[:-1])


def _damaged(pem: bytes) -> bytes:
    """A base64 line of the first block overwritten with characters base64 does not have."""
    lines = pem.splitlines(True)
    lines[2] = b"!!!!" + lines[2][4:]
    return b"".join(lines)


def _short(pem: bytes) -> bytes:
    """BEGIN, one base64 line, END: the rest of the block lost."""
    lines = pem.splitlines(True)
    return b"".join(lines[:2] + lines[-1:])


def _body_lines(pem: bytes) -> list[str]:
    return [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]


_Make = Callable[[bytes, bytes, bytes], tuple[bytes, bytes]]
_CASES: dict[str, tuple[str, _Make]] = {
    "tls.crt cut short": ("tls.crt", lambda crt, key, chain: (_cut(crt), key)),
    "tls.crt damaged": ("tls.crt", lambda crt, key, chain: (_damaged(crt), key)),
    "tls.crt one line left": ("tls.crt", lambda crt, key, chain: (_short(crt), key)),
    "the chain's second certificate cut short": (
        "tls.crt", lambda crt, key, chain: (crt + _cut(chain), key)),
    "tls.key cut short": ("tls.key", lambda crt, key, chain: (crt, _cut(key))),
    "tls.key damaged": ("tls.key", lambda crt, key, chain: (crt, _damaged(key))),
    "tls.key one line left": ("tls.key", lambda crt, key, chain: (crt, _short(key))),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_an_unreadable_pem_names_the_key_of_the_secret_at_fault(
        ca: trustme.CA, case: str, caplog: pytest.LogCaptureFixture) -> None:
    # Fails before: "unusable certificate: SSLError: [SSL] PEM lib (_ssl.c:3905)" (or "bad end
    # line", "bad base64 decode"), naming neither tls.crt nor tls.key.
    half, make = _CASES[case]
    crt, key = _pems(ca.issue_cert("cut.test"))
    bad_crt, bad_key = make(crt, key, ca.cert_pem.bytes())
    res = Resources(ingresses=(_ingress("w", [(("cut.test",), "s")], rule_hosts=("cut.test",)),),
                    secrets=(_secret("s", bad_crt, bad_key),))
    with caplog.at_level(logging.WARNING, logger="ingresslib.tls"):
        store = CertificateStore()
        problems = store.update(res)
    [p] = problems
    assert not p.warning and "default/s" in p.message
    other = "tls.key" if half == "tls.crt" else "tls.crt"
    assert f"{half} holds a PEM block that cannot be read" in p.message, p.message
    assert other not in p.message, p.message
    assert "PEM lib" not in p.message and "_ssl.c" not in p.message, p.message
    # Never a line of the PEM in the message or the log.
    for line in _body_lines(crt) + _body_lines(key):
        assert line not in p.message and line not in caplog.text
    assert store.context_for("cut.test") is store.default_context
    # ``ingresslib check`` says the same.
    assert [str(q) for q in certificate_problems(res)] == [str(p)]


def test_a_broken_update_in_place_names_the_key_and_keeps_the_last_good_certificate(
        ca: trustme.CA) -> None:
    # Fails before (the message named neither key). A Secret updated in place with a cut copy:
    # the last good certificate keeps serving, as in ingress-nginx.
    crt, key = _pems(ca.issue_cert("keep.test"))
    ing = (_ingress("w", [(("keep.test",), "s")], rule_hosts=("keep.test",)),)
    store = CertificateStore()
    assert store.update(Resources(ingresses=ing, secrets=(_secret("s", crt, key),))) == []
    served = store.context_for("keep.test")
    assert served is not store.default_context
    [p] = store.update(Resources(ingresses=ing, secrets=(_secret("s", crt, _cut(key)),)))
    assert p.warning and "still serving its last good certificate" in p.message
    assert "tls.key holds a PEM block that cannot be read" in p.message, p.message
    assert store.context_for("keep.test") is served


def _rsa_1024_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak.test")])
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("weak.test")]), False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_guard_a_readable_pair_openssl_refuses_keeps_openssls_reason() -> None:
    # Guard: both halves read; OpenSSL refuses the 1024-bit key at its security level. That
    # is not blamed on a damaged PEM.
    crt, key = _rsa_1024_pair()
    res = Resources(ingresses=(_ingress("w", [(("weak.test",), "s")],
                                        rule_hosts=("weak.test",)),),
                    secrets=(_secret("s", crt, key),))
    [p] = certificate_problems(res)
    assert "cannot be read" not in p.message
    assert "too small" in p.message.lower() or "TOO_SMALL" in p.message, p.message


def test_guard_the_other_pem_messages_are_unchanged(ca: trustme.CA) -> None:
    # Guard: a mismatched key, an encrypted key and a missing BEGIN line keep their messages.
    crt, key = _pems(ca.issue_cert("m.test"))
    _other_crt, other_key = _pems(ca.issue_cert("m.test"))
    k = serialization.load_pem_private_key(key, None)
    encrypted = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(b"pw"))
    for pair, says in (((crt, other_key), "tls.key does not match the certificate in tls.crt"),
                       ((crt, encrypted), "tls.key is encrypted"),
                       ((b"no pem", key), "tls.crt holds no PEM certificate")):
        res = Resources(ingresses=(_ingress("w", [(("m.test",), "s")],
                                            rule_hosts=("m.test",)),),
                        secrets=(_secret("s", *pair),))
        [p] = certificate_problems(res)
        assert says in p.message, p.message


# --- the server's TLS close ----------------------------------------------------------------------
#
# nginx sets ``c->ssl->no_wait_shutdown = 1`` once the handshake is done (ngx_http_request.c
# ngx_http_ssl_handshake_handler): when it closes a connection (Connection: close, the
# keep-alive timeout) it sends its close_notify and closes the socket. asyncio's TLS transport
# sends its close_notify and then waits up to ssl_shutdown_timeout (30 s) for the client's,
# holding the socket (counted against max_connections) for a client that keeps its end open
# without answering. ``_ServerTLS._do_shutdown`` now closes as nginx does (tests in
# test_server_s19.py); these guards hold either way: the response is flushed whole before the
# close, and a session the server closed still resumes.


class _Backend:
    """A backend answering every request with ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> tuple[str, int]:
        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    await r.readuntil(b"\r\n\r\n")
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size)
                    w.write(b"x" * self.size)
                    await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                w.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _listener(ca: trustme.CA, endpoint: tuple[str, int], **settings: Any) -> ProxyServer:
    store = CertificateStore()
    assert store.update(Resources(
        ingresses=(_ingress("w", [(("close.test",), "s")], rule_hosts=("close.test",)),),
        secrets=(_secret("s", *_pems(ca.issue_cert("close.test"))),))) == []
    server = ProxyServer(StubRouter([endpoint]), cert_store=store, **settings)
    await server.start(None, ("127.0.0.1", 0))
    return server


class _SilentTLSClient:
    """A TLS client over a raw socket (MemoryBIO): it reads what the server sends, and never
    answers the server's close_notify nor closes its end unless told."""

    def __init__(self, ca: trustme.CA, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, session: ssl.SSLSession | None = None,
                 ctx: ssl.SSLContext | None = None) -> None:
        if ctx is None:
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="close.test",
                                session=session)
        self.reader, self.writer = reader, writer

    async def _flush(self) -> None:
        data = self.out.read()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _more(self) -> bool:
        data = await asyncio.wait_for(self.reader.read(65536), 20)
        if not data:
            return False
        self.inc.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                assert await self._more(), "closed during the handshake"

    async def send(self, data: bytes) -> None:
        self.obj.write(data)
        await self._flush()

    async def read_until_close_notify(self, pause: float = 0.0) -> bytes:
        """Everything the server sends up to its close_notify (``pause`` seconds between two
        reads: a slow client)."""
        got = b""
        while True:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                if pause:
                    await asyncio.sleep(pause)
                assert await self._more(), "a bare EOF before the close_notify"
                continue
            except ssl.SSLZeroReturnError:
                return got
            if not chunk:
                return got
            got += chunk

    async def raw_eof(self) -> bool:
        """Whether the server's end of the socket closes (FIN) while this client stays silent:
        True on EOF, False if it is still open after 20 s (asyncio's wait was 30 s)."""
        try:
            while await self._more():
                pass
        except TimeoutError:
            return False
        return True


async def _settled(server: ProxyServer) -> None:
    for _ in range(500):
        if server.sockets_held() == 0:
            return
        await asyncio.sleep(0.02)


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_a_slow_client_still_gets_the_whole_response_before_the_close(
        ca: trustme.CA) -> None:
    # Guard: closing without waiting for the client's close_notify still flushes what is
    # buffered first: 2 MB to a client that reads slowly, then Connection: close.
    size = 2 * 1024 * 1024
    async with _Backend(size) as endpoint:
        server = await _listener(ca, endpoint)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            client = _SilentTLSClient(ca, r, w)
            await client.handshake()
            await client.send(b"GET / HTTP/1.1\r\nHost: close.test\r\nConnection: close\r\n\r\n")
            answer = await client.read_until_close_notify(pause=0.002)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and body == b"x" * size
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_guard_a_session_closed_by_the_server_still_resumes(
        ca: trustme.CA, version: ssl.TLSVersion) -> None:
    # Guard: our close_notify is sent before the socket closes, so the session stays in the
    # cache (OpenSSL drops the session of a connection freed without its shutdown).
    async with _Backend(10) as endpoint:
        server = await _listener(ca, endpoint)
        try:
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            ctx.maximum_version = version
            session = None
            reused = []
            for _ in range(2):
                r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
                client = _SilentTLSClient(ca, r, w, session=session, ctx=ctx)
                await client.handshake()
                await client.send(b"GET / HTTP/1.1\r\nHost: close.test\r\n"
                                  b"Connection: close\r\n\r\n")
                assert (await client.read_until_close_notify()).startswith(b"HTTP/1.1 200 ")
                reused.append(client.obj.session_reused)
                session = client.obj.session
                w.close()
            assert reused == [False, True]
        finally:
            await server.shutdown(1)
