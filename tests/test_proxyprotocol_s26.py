"""Session 26 (PP): the PROXY protocol, ingress-nginx ``use-proxy-protocol``.

The reader follows nginx's src/core/ngx_proxy_protocol.c (``ngx_proxy_protocol_read`` for v1,
``ngx_proxy_protocol_v2_read`` for v2); the server reads the header on every listener before
anything else (before the TLS ClientHello) and, when the TCP peer is inside
``proxy-real-ip-cidr`` (nginx.tmpl: ``real_ip_header proxy_protocol;`` with
``set_real_ip_from``), the header's client stands for the peer and its destination port is
``X-Forwarded-Port`` (nginx.tmpl: ``set $pass_server_port $proxy_protocol_server_port;``).
Before this session the key was "an ingress-nginx key ingresslib does not implement, ignored",
``ProxyServer(use_proxy_protocol=True)`` a TypeError, and there was no reader at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import struct
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import ValidationError
from ingresslib._config import load_config, parse_config_data
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._proxy_protocol import (
    SIGNATURE, ProxyHeader, ProxyProtocolError, ProxyProtocolReader, parse_go_duration,
)
from ingresslib.proxy._server import ProxyServer
from tests._budget import examples
from tests._server_helpers import StubRouter
from tests.test_tls import _ingress, _pems, _secret

# --- helpers -------------------------------------------------------------------------------------


def _v2(command: int = 1, family: int = 1, transport: int = 1, addrs: bytes | None = None,
        tlvs: bytes = b"", length: int | None = None, version: int = 2) -> bytes:
    """A v2 header: ``addrs`` default to 192.0.2.1:56324 -> 198.51.100.2:443 (IPv4) or
    2001:db8::1:56324 -> 2001:db8::2:443 (IPv6)."""
    if addrs is None:
        if family == 2:
            addrs = (ipaddress.IPv6Address("2001:db8::1").packed
                     + ipaddress.IPv6Address("2001:db8::2").packed + struct.pack("!HH", 56324, 443))
        else:
            addrs = bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack("!HH", 56324, 443)
    body = addrs + tlvs
    n = len(body) if length is None else length
    return SIGNATURE + bytes([version << 4 | command, family << 4 | transport]) + \
        struct.pack("!H", n) + body


def _read(data: bytes) -> tuple[ProxyHeader | None, bytes]:
    r = ProxyProtocolReader()
    h = r.feed(data)
    return h, r.rest


_TLV = bytes([0x02, 0, 8]) + b"pp.test!" + bytes([0xEA, 0, 3]) + b"vpc"

#: Valid headers (each followed by the client's own bytes) and what they read as.
_VALID: list[tuple[bytes, ProxyHeader]] = [
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
     ProxyHeader(1, "TCP4", ("192.0.2.1", 56324), ("198.51.100.2", 443), 56324, 443)),
    (b"PROXY TCP6 2001:DB8:0::1 2001:db8::2 1 65535\r\n",
     ProxyHeader(1, "TCP6", ("2001:db8::1", 1), ("2001:db8::2", 65535), 1, 65535)),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(1, "UNKNOWN")),
    (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:fff0 65535 65535\r\n", ProxyHeader(1, "UNKNOWN")),
    (_v2(), ProxyHeader(2, "PROXY", ("192.0.2.1", 56324), ("198.51.100.2", 443), 56324, 443)),
    (_v2(tlvs=_TLV), ProxyHeader(2, "PROXY", ("192.0.2.1", 56324), ("198.51.100.2", 443),
                                 56324, 443, _TLV)),
    (_v2(family=2), ProxyHeader(2, "PROXY", ("2001:db8::1", 56324), ("2001:db8::2", 443),
                                56324, 443)),
    (_v2(command=0), ProxyHeader(2, "LOCAL")),            # a health check: addresses skipped
    (_v2(command=0, addrs=b""), ProxyHeader(2, "LOCAL")),
    (_v2(family=0, addrs=b""), ProxyHeader(2, "PROXY")),  # UNSPEC
    (_v2(family=3, addrs=b"\0" * 216), ProxyHeader(2, "PROXY")),  # UNIX: skipped
    (_v2(transport=2), ProxyHeader(2, "PROXY")),  # DGRAM: skipped
]

_REST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


# --- the reader ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,expected", _VALID)
def test_valid_headers_read_whole_and_leave_the_rest(raw: bytes, expected: ProxyHeader) -> None:
    assert _read(raw + _REST) == (expected, _REST)
    assert _read(raw) == (expected, b"")


@pytest.mark.parametrize("raw,expected", _VALID)
def test_valid_headers_byte_at_a_time(raw: bytes, expected: ProxyHeader) -> None:
    r = ProxyProtocolReader()
    data = raw + b"G"
    for i in range(len(raw) - 1):
        assert r.feed(data[i:i + 1]) is None, i
    assert r.feed(data[len(raw) - 1:]) == expected
    assert r.rest == b"G"
    with pytest.raises(RuntimeError):
        r.feed(b"x")


def test_v1_address_that_is_no_ip_keeps_no_source() -> None:
    # nginx's reader takes any run of hex digits, ':' and '.' (ngx_proxy_protocol_read_addr);
    # the realip module's ngx_parse_addr then fails and the TCP peer stands.
    h, _ = _read(b"PROXY TCP4 1.2.3 ::: 10 20\r\n")
    assert h == ProxyHeader(1, "TCP4", None, None, 10, 20)
    # a leading zero is decimal to nginx (ngx_inet_addr), as elsewhere in ingresslib
    h, _ = _read(b"PROXY TCP4 010.0.0.1 10.0.0.2 10 20\r\n")
    assert h is not None and h.source == ("10.0.0.1", 10)


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\n",                                   # no header at all
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",                     # LF without CR
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n",                    # empty port
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    b"PROXY TCP4 1.2.3.4x 5.6.7.8 1 2\r\n",                  # not an address character
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
    b"PROXY\r\n",
    b"PROXY \r\n",
    # (b"PROXY UNKNOWN\n" + b"\r\n" is no broken header: nginx skips to the first CRLF,
    # test_small_annotations_s26.py test_proxy_protocol_unknown_skips_a_bare_lf)
    b"\r\n\r\n\x00\r\nQUIT\r",                              # the v2 signature, broken
    _v2(version=1),                                          # v2 signature, version 1
    _v2(version=3),
    _v2(family=1, length=11),                                # shorter than IPv4's addresses
    _v2(family=2, length=35),                                # shorter than IPv6's
    _v2(tlvs=b"\0" * 4070),                                  # past 4096 bytes
])
def test_broken_headers_raise(raw: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        ProxyProtocolReader().feed(raw + b"\r\n" + b"x" * 8)


def test_oversize_v1_is_refused_at_107_bytes_without_an_end_of_line() -> None:
    r = ProxyProtocolReader()
    line = b"PROXY UNKNOWN " + b"a" * 92       # 106 bytes: still waiting
    assert r.feed(line) is None
    with pytest.raises(ProxyProtocolError, match="107"):
        r.feed(b"a")
    # 107 bytes, CRLF included, is the longest line read.
    ok = b"PROXY UNKNOWN " + b"a" * 91 + b"\r\n"
    assert len(ok) == 107 and _read(ok)[0] == ProxyHeader(1, "UNKNOWN")


def test_garbage_is_refused_at_its_first_byte() -> None:
    for first in (b"G", b"\x16", b"p", b"\n"):
        with pytest.raises(ProxyProtocolError, match="broken header"):
            ProxyProtocolReader().feed(first)
    r = ProxyProtocolReader()
    assert r.feed(b"PROX") is None
    with pytest.raises(ProxyProtocolError):
        r.feed(b"Y-")


def test_v2_waits_for_its_announced_length() -> None:
    raw = _v2(tlvs=_TLV)
    r = ProxyProtocolReader()
    assert r.feed(raw[:16]) is None
    assert r.feed(raw[16:-1]) is None
    assert r.feed(raw[-1:] + b"rest") is not None and r.rest == b"rest"


@settings(max_examples=examples(0.5), deadline=None)
@given(st.sampled_from(_VALID), st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_hypothesis_random_splits_read_the_same(case: tuple[bytes, ProxyHeader],
                                                cuts: list[int]) -> None:
    raw, expected = case
    data = raw + _REST
    points = sorted({min(c, len(data)) for c in cuts})
    r = ProxyProtocolReader()
    got, start = None, 0
    for p in [*points, len(data)]:
        if got is not None:
            break
        got = r.feed(data[start:p])
        start = p
    assert got == expected
    assert r.rest + data[start:] == _REST


@settings(max_examples=examples(0.5), deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.binary(max_size=120).map(lambda b: b"PROXY " + b),
                 st.binary(max_size=120).map(lambda b: SIGNATURE + b)),
       st.integers(min_value=1, max_value=50))
def test_hypothesis_random_bytes_raise_only_the_reader_error(data: bytes, step: int) -> None:
    r = ProxyProtocolReader()
    try:
        for i in range(0, len(data), step):
            if r.feed(data[i:i + step]) is not None:
                break
    except ProxyProtocolError:
        pass


# --- proxy-protocol-header-timeout: Go's time.ParseDuration -------------------------------------


@pytest.mark.parametrize("text,seconds", [
    ("5s", 5.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("300ms", 0.3), ("0", 0.0), ("+2s", 2.0),
    (".5s", 0.5), ("1h0m0s", 3600.0), ("10us", 1e-5),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["7", "", "s", "5x", "-1s", "5 s", " 5s", "1.2.3s", "."])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


# --- the ConfigMap and the settings ---------------------------------------------------------------


def test_configmap_keys_set_the_settings() -> None:
    cfg = parse_config_data({"use-proxy-protocol": "true", "proxy-real-ip-cidr": "10.0.0.0/8",
                             "proxy-protocol-header-timeout": "10s"})
    assert cfg.warnings == ()
    assert cfg.settings.use_proxy_protocol is True
    assert cfg.settings.proxy_protocol_header_timeout == 10.0
    defaults = ProxySettings()
    assert (defaults.use_proxy_protocol, defaults.proxy_protocol_header_timeout) == (False, 5.0)


def test_configmap_without_trusted_peers_warns() -> None:
    cfg = parse_config_data({"use-proxy-protocol": "true"})
    assert cfg.settings.use_proxy_protocol is True
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith("ConfigMap: data.use-proxy-protocol: on, but no "
                                      "proxy-real-ip-cidr")
    assert parse_config_data({"use-proxy-protocol": "false"}).warnings == ()


@pytest.mark.parametrize("key,value", [("proxy-protocol-header-timeout", "7"),
                                       ("proxy-protocol-header-timeout", "-5s"),
                                       ("use-proxy-protocol", "yes")])
def test_configmap_values_ingress_nginx_would_not_read_are_errors(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_config_data({key: value})
    assert f"data.{key}: Invalid value" in str(info.value)


def test_serve_config_file_reaches_the_server(tmp_path: Any) -> None:
    # ``serve --config`` reads the file with load_config and gives ProxyServer its settings.
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n"
                    '  use-proxy-protocol: "true"\n  proxy-real-ip-cidr: "10.0.0.0/8"\n'
                    '  proxy-protocol-header-timeout: "2500ms"\n')
    s = load_config(path).settings
    assert (s.use_proxy_protocol, s.proxy_protocol_header_timeout) == (True, 2.5)


def test_settings_refuse_a_negative_header_timeout() -> None:
    with pytest.raises(ValueError, match="proxy_protocol_header_timeout"):
        ProxySettings(proxy_protocol_header_timeout=-1)


# --- the sans-IO core: a driver of its own reads the header ----------------------------------------

_YAML = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
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


def test_sans_io_driver_passes_the_headers_client_as_the_peer() -> None:
    # API.md: the core never sees the header; a driver reads it and passes its source as
    # ``peer`` and its destination port as ``local_port`` (what ProxyServer does).
    import ingresslib
    from ingresslib.proxy import OpenUpstream, Proxy, SendUpstream

    proxy = Proxy(ingresslib.Router(ingresslib.parse_manifests(_YAML)), ProxySettings())
    reader = ProxyProtocolReader()
    assert reader.feed(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 8443\r\nGET / HT") is not None
    h = reader.header
    assert h is not None and h.source is not None and h.destination is not None
    conn = proxy.connection(h.source, local_port=h.destination[1], now=0.0)
    acts = conn.start(0.0) + conn.receive_data(reader.rest + b"TP/1.1\r\nHost: a\r\n\r\n", 0.0)
    opened = [a for a in acts if isinstance(a, OpenUpstream)]
    acts += conn.upstream_connected(opened[0].conn_id, 0.0)
    head = b"".join(a.data for a in acts if isinstance(a, SendUpstream))
    assert b"\r\nx-real-ip: 203.0.113.7\r\n" in head
    assert b"\r\nx-forwarded-for: 203.0.113.7\r\n" in head
    assert b"\r\nx-forwarded-port: 8443\r\n" in head


# --- end to end through ProxyServer ----------------------------------------------------------------


class _Echo:
    """A backend answering each request with its head (the request as the backend saw it)."""

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


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if line:
            name, _, value = line.partition(":")
            out[name.strip().lower()] = value.strip()
    return out


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    data: bytes) -> tuple[int, dict[str, str]]:
    """Send ``data`` (ending with one request), read one response: its status and, for a 200,
    the headers the backend saw."""
    writer.write(data)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    status = int(head.split(b" ", 2)[1])
    length = int(_headers(head).get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 2)
    return status, _headers(body) if status == 200 else {}


async def _closed_without_answer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(100), 2) == b""
    except ConnectionResetError:
        return True


_GET = b"GET /x HTTP/1.1\r\nHost: pp.test\r\n\r\n"


async def _server(endpoint: tuple[str, int], **kw: Any) -> ProxyServer:
    server = ProxyServer(StubRouter([endpoint]), **kw)
    await server.start(("127.0.0.1", 0))
    return server


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("header", [
    b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 8443\r\n",
    b"PROXY TCP4 203.0.113.7 ::: 40000 8443\r\n",   # no destination address: its port is used
    _v2(addrs=bytes([203, 0, 113, 7, 198, 51, 100, 1]) + struct.pack("!HH", 40000, 8443),
        tlvs=_TLV),
])
async def test_backend_sees_the_headers_client(header: bytes) -> None:
    async with _Echo() as ep:
        server = await _server(ep, use_proxy_protocol=True, proxy_real_ip_cidr=("127.0.0.0/8",))
        try:
            port = server.addresses[0][2]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            status, seen = await _exchange(r, w, header + _GET)
            assert status == 200
            assert seen["x-forwarded-for"] == "203.0.113.7"
            assert seen["x-real-ip"] == "203.0.113.7"
            assert seen["x-forwarded-port"] == "8443"
            # keep-alive: the header was the connection's, not the request's
            status, seen = await _exchange(r, w, _GET)
            assert (status, seen["x-real-ip"]) == (200, "203.0.113.7")
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_header_split_across_reads() -> None:
    header = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 80\r\n"
    async with _Echo() as ep:
        server = await _server(ep, use_proxy_protocol=True, proxy_real_ip_cidr=("127.0.0.1/32",))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(header[:9])
            await w.drain()
            await asyncio.sleep(0.05)
            status, seen = await _exchange(r, w, header[9:] + _GET)
            assert (status, seen["x-forwarded-for"], seen["x-forwarded-port"]) == (
                200, "2001:db8::7", "80")
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_untrusted_peer_header_read_but_not_used() -> None:
    async with _Echo() as ep:
        server = await _server(ep, use_proxy_protocol=True, proxy_real_ip_cidr=("10.0.0.0/8",))
        try:
            port = server.addresses[0][2]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            status, seen = await _exchange(
                r, w, b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 8443\r\n" + _GET)
            assert (status, seen["x-forwarded-for"], seen["x-forwarded-port"]) == (
                200, "127.0.0.1", str(port))
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_local_and_unknown_keep_the_tcp_peer() -> None:
    async with _Echo() as ep:
        server = await _server(ep, use_proxy_protocol=True, proxy_real_ip_cidr=("127.0.0.0/8",))
        try:
            port = server.addresses[0][2]
            for header in (_v2(command=0), b"PROXY UNKNOWN\r\n"):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                status, seen = await _exchange(r, w, header + _GET)
                assert (status, seen["x-real-ip"], seen["x-forwarded-port"]) == (
                    200, "127.0.0.1", str(port))
                w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("first", [
    _GET,                                                   # no header
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n" + _GET,       # broken
    _v2(length=4) + _GET,                                   # v2, bad length
])
async def test_missing_or_broken_header_closes(first: bytes,
                                               caplog: pytest.LogCaptureFixture) -> None:
    async with _Echo() as ep:
        server = await _server(ep, use_proxy_protocol=True, proxy_real_ip_cidr=("127.0.0.0/8",))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            with caplog.at_level(logging.ERROR, logger="ingresslib.server"):
                w.write(first)
                assert await _closed_without_answer(r)
            assert "while reading PROXY protocol" in caplog.text
            w.close()
            await asyncio.sleep(0.01)
            assert server.sockets_held() == 0
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_no_header_within_the_timeout_closes() -> None:
    async with _Echo() as ep:
        server = await _server(ep, use_proxy_protocol=True, proxy_protocol_header_timeout=0.1)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(b"PROXY TCP4 1.2.3.4")        # never finished
            assert await _closed_without_answer(r)
            await asyncio.sleep(0.01)
            assert server.sockets_held() == 0
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_option_off_a_proxy_line_is_a_bad_request() -> None:
    async with _Echo() as ep:
        server = await _server(ep, proxy_real_ip_cidr=("127.0.0.0/8",))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 8443\r\n" + _GET)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 400 ")
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_settings_change_applies_to_later_connections() -> None:
    import dataclasses

    async with _Echo() as ep:
        server = await _server(ep, proxy_real_ip_cidr=("127.0.0.0/8",))
        try:
            server.settings = dataclasses.replace(server.settings, use_proxy_protocol=True)
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            status, seen = await _exchange(
                r, w, b"PROXY TCP4 203.0.113.9 198.51.100.1 40000 443\r\n" + _GET)
            assert (status, seen["x-real-ip"]) == (200, "203.0.113.9")
            w.close()
        finally:
            await server.shutdown(1)


# --- the TLS listener: the header comes before the ClientHello -----------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _tls_server(ca: trustme.CA, endpoint: tuple[str, int], **kw: Any) -> ProxyServer:
    store = CertificateStore()
    assert store.update(Resources(
        ingresses=(_ingress("w", [(("pp.test",), "s")], rule_hosts=("pp.test",)),),
        secrets=(_secret("s", *_pems(ca.issue_cert("pp.test"))),))) == []
    server = ProxyServer(StubRouter([endpoint]), cert_store=store, **kw)
    await server.start(None, ("127.0.0.1", 0))
    return server


@pytest.mark.network
@pytest.mark.asyncio
async def test_tls_listener_reads_the_header_before_the_client_hello(ca: trustme.CA) -> None:
    async with _Echo() as ep:
        server = await _tls_server(ca, ep, use_proxy_protocol=True,
                                   proxy_real_ip_cidr=("127.0.0.0/8",))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(_v2(family=2, addrs=ipaddress.IPv6Address("2001:db8::9").packed
                        + ipaddress.IPv6Address("2001:db8::1").packed
                        + struct.pack("!HH", 40000, 443)))
            await w.drain()
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            await w.start_tls(ctx, server_hostname="pp.test")
            status, seen = await _exchange(r, w, _GET)
            assert status == 200
            assert (seen["x-forwarded-for"], seen["x-real-ip"]) == ("2001:db8::9", "2001:db8::9")
            assert (seen["x-forwarded-port"], seen["x-forwarded-proto"]) == ("443", "https")
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_tls_listener_without_a_header_closes(ca: trustme.CA) -> None:
    async with _Echo() as ep:
        server = await _tls_server(ca, ep, use_proxy_protocol=True,
                                   proxy_real_ip_cidr=("127.0.0.0/8",))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(b"\x16\x03\x01\x00\x05hello")   # a ClientHello's first bytes, no header
            assert await _closed_without_answer(r)
            w.close()
        finally:
            await server.shutdown(1)
