"""Session 14, TLS leftovers (SEMANTICS §10): a ``spec.tls`` entry without ``secretName``, a
ClientHello whose server name is not ASCII, and the SNI lookup against ingress-nginx's
``certificate.lua``. The tests of sections 1 and 2 and ``test_store_context_for_hello`` failed on
the code before this session's change; the guards (marked so) and the reader's own tests pin
what reading the ClientHello before OpenSSL must not change."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
import trustme
from cryptography import x509

from ingresslib import Router, parse_manifests
from ingresslib._resources import Resources
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore
from ingresslib.proxy._client_hello import ClientHelloReader
from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter
from tests._upstream_helpers import until
from tests.test_tls import _ingress, _pems, _secret

# --- a hand-built ClientHello (raw SNI bytes: the ssl module never sends a non-ASCII name) -----


def _u16(n: int) -> bytes:
    return struct.pack("!H", n)


def _v16(b: bytes) -> bytes:
    return _u16(len(b)) + b


def _ext(kind: int, data: bytes) -> bytes:
    return _u16(kind) + _v16(data)


def _client_hello(sni: bytes | None, *, tls13: bool = True, key_share: bool = True,
                  split: int | None = None) -> bytes:
    """A ClientHello record offering TLS 1.2 (and 1.3 unless ``tls13`` is False), with
    ``sni`` as the server name's bytes. ``key_share=False`` sends no key share (the server
    answers HelloRetryRequest); ``split`` cuts the handshake message into two records there."""
    exts = b"" if sni is None else _ext(0x0000, _v16(b"\x00" + _v16(sni)))
    exts += _ext(0x000a, _v16(b"\x00\x1d\x00\x17"))       # x25519, secp256r1
    exts += _ext(0x000b, b"\x01\x00")                      # ec_point_formats: uncompressed
    exts += _ext(0x000d, _v16(bytes.fromhex("04030804040105030805050108060601")))
    exts += _ext(0xff01, b"\x00")                          # renegotiation_info (empty)
    if tls13:
        exts += _ext(0x002b, b"\x02\x03\x04")              # supported_versions: TLS 1.3
        exts += _ext(0x002d, b"\x01\x01")                  # psk_key_exchange_modes
        shares = b"\x00\x1d" + _v16(os.urandom(32)) if key_share else b""
        exts += _ext(0x0033, _v16(shares))
    suites = bytes.fromhex("130113021303c02bc02fc02cc030")
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + _v16(suites) + b"\x01\x00"
            + _v16(exts))
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    if split is None:
        return b"\x16\x03\x01" + _v16(hs)
    return b"\x16\x03\x01" + _v16(hs[:split]) + b"\x16\x03\x01" + _v16(hs[split:])


def _records(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while len(data) >= 5:
        n = struct.unpack("!H", data[3:5])[0]
        out.append((data[0], data[5:5 + n]))
        data = data[5 + n:]
    return out


def _tls12_leaf(data: bytes) -> x509.Certificate | None:
    """The leaf of the server's (plaintext, TLS 1.2) Certificate message."""
    hs = b"".join(p for t, p in _records(data) if t == 22)
    while len(hs) >= 4:
        kind, n = hs[0], int.from_bytes(hs[1:4], "big")
        if kind == 11:
            first = int.from_bytes(hs[7:10], "big")
            return x509.load_der_x509_certificate(hs[10:10 + first])
        hs = hs[4 + n:]
    return None


def _whole_records(data: bytes) -> list[tuple[int, bytes]]:
    """The records of ``data`` that have arrived whole (``_records`` also cuts a partial one)."""
    out = []
    while len(data) >= 5 and len(data) >= 5 + struct.unpack("!H", data[3:5])[0]:
        n = struct.unpack("!H", data[3:5])[0]
        out.append((data[0], data[5:5 + n]))
        data = data[5 + n:]
    return out


def _tls12_flight(data: bytes) -> bool:
    """The server's whole first TLS 1.2 flight (through ServerHelloDone), or an alert: all it
    sends before the client speaks again."""
    recs = _whole_records(data)
    if any(t == 21 for t, _ in recs):
        return True
    hs = b"".join(p for t, p in recs if t == 22)
    while len(hs) >= 4:
        kind, n = hs[0], int.from_bytes(hs[1:4], "big")
        if len(hs) < 4 + n:
            return False
        if kind == 14:
            return True
        hs = hs[4 + n:]
    return False


def _first_record(data: bytes) -> bool:
    return bool(_whole_records(data))


def _http_head(data: bytes) -> bool:
    return b"\r\n\r\n" in data


async def _exchange(port: int, *chunks: bytes, pause: float = 0.0,
                    enough: Callable[[bytes], bool] | None = None) -> bytes:
    """Send ``chunks`` (``pause`` between them) and read what comes back until the server
    goes quiet or closes, or (sooner) until ``enough`` of the answer holds what the test reads:
    a TLS server waits for the client after its flight, so "quiet" alone costs a second."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        for c in chunks:
            w.write(c)
            await w.drain()
            if pause:
                await asyncio.sleep(pause)
        data = b""
        while enough is None or not enough(data):
            try:
                got = await asyncio.wait_for(r.read(65536), 1.0)
            except TimeoutError:
                break
            if not got:
                break
            data += got
        return data
    finally:
        w.close()


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """What reaches ``sys.unraisablehook`` (the "Exception ignored ..." stderr lines)."""
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    yield seen


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _cn(cert: x509.Certificate | None) -> str:
    assert cert is not None
    return cert.subject.rfc4514_string()


def _sans(cert: x509.Certificate | None) -> list[str]:
    assert cert is not None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


# --- 1. spec.tls[] without secretName ----------------------------------------------------------

_NO_SECRET = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  tls:
  - hosts: [a.test]
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
"""


def test_tls_entry_without_secret_name_is_not_a_problem(
        caplog: pytest.LogCaptureFixture) -> None:
    # `secretName` is optional in networking.k8s.io/v1 IngressTLS. ingress-nginx controller.go
    # createServers: "Host %q is listed in the TLS section but secretName is empty. Using
    # default certificate" (klog.V(3).Infof) -> servers[host].SSLCert =
    # n.getDefaultSSLCertificate(). Before: a problem, logged as a WARNING ("no secretName").
    res = parse_manifests(_NO_SECRET)
    store = CertificateStore()
    caplog.set_level(logging.INFO, logger="ingresslib.tls")
    assert store.update(res) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    notes = [r.getMessage() for r in caplog.records if r.name == "ingresslib.tls"]
    assert notes == ["Ingress default/web: spec.tls[0] has no secretName: the default "
                     "certificate for a.test, as in ingress-nginx"]
    # The default certificate, and still a TLS host (ssl-redirect, HSTS): the default
    # certificate has a UID (ssl.go FakeSSLCertificateUID), so certificate.lua's
    # configured_for_current_request is true for the host.
    assert store.context_for("a.test") is store.default_context
    assert store.has_tls("a.test")


def test_no_note_when_another_entry_gives_the_host_a_certificate(
        ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    # An entry with empty hosts and no secretName next to one with a certificate: ingress-nginx
    # extractTLSSecretName skips it ("There's no secretName specified, so it will never be
    # available") and finds the other one by its SAN. Nothing to say then.
    leaf = ca.issue_cert("b.test")
    ing = _ingress("w", [((), ""), (("b.test",), "b")], rule_hosts=("b.test",))
    store = CertificateStore()
    caplog.set_level(logging.INFO, logger="ingresslib.tls")
    assert store.update(Resources(ingresses=(ing,), secrets=(_secret("b", *_pems(leaf)),))) == []
    assert store.context_for("b.test") is not store.default_context
    assert [r for r in caplog.records if r.name == "ingresslib.tls"] == []


@pytest.mark.network
@pytest.mark.asyncio
async def test_tls_entry_without_secret_name_redirects_and_serves_the_default_certificate(
        ) -> None:
    # Guard (passed before too): what the note says is what the server does. lua_ingress.lua
    # redirect_to_https: "return location_config.ssl_redirect and
    # certificate_configured_for_current_request()".
    res = parse_manifests(_NO_SECRET)
    store = CertificateStore()
    store.update(res)
    server = ProxyServer(Router(res), cert_store=store)
    await server.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    (_, _, http_port), (_, _, https_port) = server.addresses
    try:
        answer = await _exchange(http_port, b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
                                 enough=_http_head)
        head = answer.split(b"\r\n\r\n")[0].decode()
        assert head.startswith("HTTP/1.1 308"), head
        assert f"location: https://a.test:{https_port}/x" in head.lower() or \
            "location: https://a.test/x" in head.lower(), head
        served = _tls12_leaf(await _exchange(https_port, _client_hello(b"a.test", tls13=False),
                                             enough=_tls12_flight))
        assert DEFAULT_CERT_NAME in _cn(served)
    finally:
        await server.shutdown(1)


# --- 2. a ClientHello whose server name is not ASCII --------------------------------------------


@pytest_asyncio.fixture
async def listener(ca: trustme.CA) -> AsyncIterator[ProxyServer]:
    leaf, wild = ca.issue_cert("a.test"), ca.issue_cert("*.w.test")
    store = CertificateStore()
    assert store.update(Resources(
        ingresses=(_ingress("w", [(("a.test",), "a"), (("*.w.test",), "w")]),),
        secrets=(_secret("a", *_pems(leaf)), _secret("w", *_pems(wild))))) == []
    server = ProxyServer(StubRouter([]), cert_store=store, client_header_timeout=2)
    await server.start(None, ("127.0.0.1", 0))
    try:
        yield server
    finally:
        await server.shutdown(1)


_UTF8_NAMES = ["bücher.test".encode(), "例え.テスト".encode(), b"\xff\xfe.test"]


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("name", _UTF8_NAMES)
async def test_non_ascii_sni_gets_the_default_certificate_without_stderr_noise(
        listener: ProxyServer, unraisable: list[Any], name: bytes) -> None:
    # Before: CPython's _servername_callback failed to decode the name ("Exception ignored
    # in: b'...' UnicodeDecodeError" on stderr, per connection) and the handshake ended with
    # an internal_error alert (21, 0x50). nginx + certificate.lua: no certificate for such a
    # name, so the default one.
    port = listener.addresses[0][2]
    answer = await _exchange(port, _client_hello(name, tls13=False), enough=_tls12_flight)
    assert _records(answer)[0][0] == 22, answer[:16]          # a ServerHello, not an alert
    assert DEFAULT_CERT_NAME in _cn(_tls12_leaf(answer))
    answer = await _exchange(port, _client_hello(name), enough=_first_record)  # TLS 1.3 too
    assert [t for t, _ in _records(answer)][:1] == [22] and _records(answer)[0][1][0] == 2
    assert unraisable == []
    await until(lambda: listener.handshaking == {}, 30)  # waited for, not slept for
    assert listener.handshaking == {}


@pytest.mark.network
@pytest.mark.asyncio
async def test_non_ascii_sni_after_hello_retry_request_makes_no_stderr_noise(
        listener: ProxyServer, unraisable: list[Any]) -> None:
    # A first ClientHello without a key share makes the server ask again (TLS 1.3
    # HelloRetryRequest); OpenSSL handed the second one's server name to the Python callback
    # too, so an ASCII first name did not stop the noise. No Python callback runs any more.
    port = listener.addresses[0][2]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(_client_hello(b"a.test", key_share=False))
        first = await asyncio.wait_for(r.read(65536), 5)
        hrr_random = bytes.fromhex(
            "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
        assert hrr_random in first
        w.write(b"\x14\x03\x03\x00\x01\x01" + _client_hello("bücher.test".encode()))
        second = await asyncio.wait_for(r.read(65536), 5)
        assert _records(second)[0][0] == 22, second[:16]       # ServerHello, not an alert
    finally:
        w.close()
    assert unraisable == []


# --- the ClientHello reading must not change anything else (guards) ----------------------------


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("sni, expected", [
    (b"a.test", "a.test"), (b"A.TEST.", "a.test"), (b"x.w.test", "*.w.test"),
    (b"X.W.Test.", "*.w.test"), (b"y.x.w.test", None), (b"w.test", None), (b"127.0.0.1", None),
    (None, None)])
async def test_sni_choice_through_the_listener(
        listener: ProxyServer, unraisable: list[Any], sni: bytes | None,
        expected: str | None) -> None:
    # Guard. ingress-nginx certificate.lua get_pem_cert_uid: one trailing dot removed
    # (re_sub(raw_hostname, "\\.$", "")), [A-Z] lowercased, the exact name, then the first label
    # replaced by "*" (re_sub(hostname, "^[^\\.]+\\.", "*.")), then the default certificate.
    answer = await _exchange(listener.addresses[0][2], _client_hello(sni, tls13=False),
                             enough=_tls12_flight)
    leaf = _tls12_leaf(answer)
    if expected is None:
        assert DEFAULT_CERT_NAME in _cn(leaf)
    else:
        assert _sans(leaf) == [expected]


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_client_hello_in_fragments_still_gets_its_certificate(
        listener: ProxyServer) -> None:
    # Guard: the hello split into two records, sent byte groups apart.
    hello = _client_hello(b"a.test", tls13=False, split=40)
    answer = await _exchange(listener.addresses[0][2], hello[:3], hello[3:50], hello[50:],
                             pause=0.02, enough=_tls12_flight)
    assert _sans(_tls12_leaf(answer)) == ["a.test"]


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_client_that_never_finishes_its_hello_is_closed_at_the_deadline(
        ca: trustme.CA) -> None:
    # Guard for the reading phase: bounded by client_header_timeout from accept, as the
    # handshake was, and counted against max_connections meanwhile.
    server = ProxyServer(StubRouter([]), cert_store=CertificateStore(),
                         client_header_timeout=0.3, max_connections=1)
    await server.start(None, ("127.0.0.1", 0))
    port = server.addresses[0][2]
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_client_hello(b"a.test")[:20])
        await until(lambda: server.handshaking, 30)  # accepted: waited for, not slept for
        assert len(server.handshaking) == 1
        # The only slot is taken: a second client is refused at accept.
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r2.read(), 2) == b""
        w2.close()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await asyncio.wait_for(r.read(), 3) == b""
        assert loop.time() - t0 < 1.0
        w.close()
        await until(lambda: server.handshaking == {}, 30)
        assert server.handshaking == {}
    finally:
        await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_plain_http_on_the_https_port_is_answered_at_once(listener: ProxyServer) -> None:
    # Guard: not a ClientHello at all: nginx's 497 answer (a 400 page, session 16; before,
    # OpenSSL refused it), with no hang until the deadline.
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    answer = await _exchange(listener.addresses[0][2], b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert loop.time() - t0 < 1.9
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"The plain HTTP request was sent to HTTPS port" in answer


class _CallbackOnlyStore:
    """A certificate store of another kind: only ``server_context`` and ``has_tls``."""

    def __init__(self, store: CertificateStore) -> None:
        self.server_context = store.server_context
        self.has_tls = store.has_tls


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_store_without_context_for_hello_keeps_its_sni_callback(ca: trustme.CA) -> None:
    # Guard: ProxyServer takes any store with server_context(); those listen as before.
    store = CertificateStore()
    store.update(Resources(ingresses=(_ingress("w", [(("a.test",), "a")]),),
                           secrets=(_secret("a", *_pems(ca.issue_cert("a.test"))),)))
    server = ProxyServer(StubRouter([]), cert_store=_CallbackOnlyStore(store))
    await server.start(None, ("127.0.0.1", 0))
    try:
        answer = await _exchange(server.addresses[0][2], _client_hello(b"a.test", tls13=False),
                                 enough=_tls12_flight)
        assert _sans(_tls12_leaf(answer)) == ["a.test"]
    finally:
        await server.shutdown(1)


# --- session resumption through the listener ---------------------------------------------------


def _tls_connect(port: int, ctx: ssl.SSLContext, sni: str,
                 session: ssl.SSLSession | None = None
                 ) -> tuple[ssl.SSLSession | None, bool, list[str]]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni, session=session) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)   # TLS 1.3 session tickets come after the handshake
            der = s.getpeercert(binary_form=True)
            assert der is not None
            out = s.session, bool(s.session_reused), _sans(x509.load_der_x509_certificate(der))
            s.unwrap()      # close_notify: a session ended by a bare EOF is not resumable
            return out


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_sessions_still_resume_through_the_listener(
        listener: ProxyServer, ca: trustme.CA, version: ssl.TLSVersion) -> None:
    # Guard: the certificate is switched before the hello is read, the session cache stays the
    # listening context's (sessions from the session cache, ingress-nginx ssl-session-cache).
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.minimum_version = ctx.maximum_version = version
    port = listener.addresses[0][2]
    for name, sans in (("a.test", ["a.test"]), ("x.w.test", ["*.w.test"])):
        session, _, first = await asyncio.to_thread(_tls_connect, port, ctx, name)
        assert session is not None and first == sans
        _, reused, again = await asyncio.to_thread(_tls_connect, port, ctx, name, session)
        assert reused and again == sans


# --- the reader itself --------------------------------------------------------------------------


def test_reader_finds_the_name_whatever_the_fragmentation() -> None:
    hello = _client_hello("bücher.test".encode(), split=7)
    r = ClientHelloReader()
    done = [r.feed(hello[i:i + 1]) for i in range(len(hello))]
    assert done == [False] * (len(hello) - 1) + [True]
    assert r.server_name == "bücher.test".encode() and bytes(r.data) == hello


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n",                       # not TLS
    b"\x15\x03\x03\x00\x02\x02\x28",             # an alert record
    b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",     # a handshake that is not a ClientHello
    b"\x16\x03\x01\x00\x04\x01\x0f\xff\xff",     # a ClientHello longer than OpenSSL takes
    b"\x16\x03\x01\x00\x00",                     # an empty record
    b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00",   # a truncated body
])
def test_reader_gives_up_at_once_on_what_is_no_readable_client_hello(data: bytes) -> None:
    r = ClientHelloReader()
    assert r.feed(data) is True
    assert r.server_name is None


def test_reader_without_sni() -> None:
    r = ClientHelloReader()
    assert r.feed(_client_hello(None)) and r.server_name is None


def test_store_context_for_hello(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("a.test")
    store = CertificateStore()
    store.update(Resources(ingresses=(_ingress("w", [(("a.test",), "a")]),),
                           secrets=(_secret("a", *_pems(leaf)),)))
    assert store.context_for_hello(b"A.test.") is store.context_for("a.test")
    assert store.context_for_hello(b"a.test") is not store.default_context
    for raw in (None, b"", "bücher.test".encode(), b"a.test\xff"):
        assert store.context_for_hello(raw) is store.default_context
    # The contexts the listener hands OpenSSL carry no Python callback.
    assert store.default_context.sni_callback is None
    assert store.context_for("a.test").sni_callback is None
    assert store.server_context().sni_callback is not None


# --- the reader against arbitrary bytes and against OpenSSL's own hellos ---------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@functools.cache
def _client_context() -> ssl.SSLContext:
    """Built once: loading the default CA store is most of an example's time, and a client's
    hello carries nothing of it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _openssl_hello(server_hostname: str | None) -> bytes:
    """The first flight of a real client (CPython's ssl over OpenSSL) asking for a name."""
    ctx = _client_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(labels=st.lists(_LABEL, max_size=5), top=st.from_regex(r"[a-z][a-z0-9]{0,10}",
                                                              fullmatch=True),
       cuts=st.lists(st.integers(1, 600), max_size=8))
def test_reader_reads_the_name_openssl_sends(labels: list[str], top: str,
                                             cuts: list[int]) -> None:
    # A name, not an address: CPython sends no SNI for an IP literal (``0.0.0.0``), so the
    # top label starts with a letter.
    name = ".".join([*labels, top])
    hello = _openssl_hello(name)
    r = ClientHelloReader()
    pos, done = 0, False
    for n in cuts + [len(hello)]:
        if done or pos >= len(hello):
            break
        done = r.feed(hello[pos:pos + n])
        pos += n
    assert done and pos >= len(hello)
    assert r.server_name == name.encode() and bytes(r.data) == hello[:pos]


def test_reader_without_a_name_from_openssl() -> None:
    r = ClientHelloReader()
    assert r.feed(_openssl_hello(None)) and r.server_name is None


@settings(max_examples=500, deadline=None)
@given(data=st.one_of(
    st.binary(max_size=400),
    # Plausible records: a handshake header with random contents, so the body parser runs.
    st.builds(lambda body: b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body,
              st.builds(lambda b: b"\x01" + len(b).to_bytes(3, "big") + b,
                        st.binary(max_size=300)))))
def test_reader_never_raises_and_ends_on_any_bytes(data: bytes) -> None:
    r = ClientHelloReader()
    done = r.feed(data)
    # Ended with a name it can hand on, or still waiting for a record it has not seen whole.
    assert r.server_name is None or (done and isinstance(r.server_name, bytes))
    if done:
        assert bytes(r.data) == data
