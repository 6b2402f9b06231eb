"""The PROXY protocol (ingress-nginx ``use-proxy-protocol``): a sans-IO reader of the header a
load balancer sends before the client's first byte, and the server's accept step around it.

ingress-nginx with ``use-proxy-protocol: "true"`` writes ``listen ... proxy_protocol`` on every
HTTP and HTTPS listener (nginx.tmpl), and ``real_ip_header proxy_protocol;`` with
``set_real_ip_from`` for each ``proxy-real-ip-cidr``: the address the header names stands for
the client when the TCP peer is a trusted one (nginx's realip module). ``$pass_server_port`` is
then ``$proxy_protocol_server_port`` (nginx.tmpl: "{{ if $all.Cfg.UseProxyProtocol }} set
$pass_server_port $proxy_protocol_server_port;"), the ``X-Forwarded-Port`` sent upstream, and
a port of 443 makes ``$pass_access_scheme`` https (lua_ingress.lua ``rewrite()``: "if
config.use_proxy_protocol then if ngx.var.proxy_protocol_server_port == "443" then
ngx.var.pass_access_scheme = "https"", after a trusted X-Forwarded-Proto): X-Forwarded-Proto,
X-Forwarded-Scheme and X-Scheme https, and no ssl-redirect, on the HTTP listener too (TLS
ended at the load balancer); ``$scheme`` (HSTS, the app-root Location) stays the listener's.
The server hands the port to the core as ``Proxy.connection(proxy_protocol_port=...)``.

Trust: nginx reads ``$proxy_protocol_server_port`` from any peer's header; ingresslib uses
the header's destination port under the same rule as its source, only from a peer inside
``proxy-real-ip-cidr`` and only when the header names a client (:meth:`_Accept._hand_off`):
an untrusted peer cannot make its requests https or choose their X-Forwarded-Port.

Every listener requires the header, the TLS one too with ssl-passthrough on. (ingress-nginx
with ``--enable-ssl-passthrough`` accepts the HTTPS port's connections in Go, nginx.go
``setupSSLProxy``, through armon/go-proxyproto's listener, which reads a v1 header only when
the bytes begin with "PROXY " and else takes them as the client's: the header is optional
there, and a v2 one is taken for the ClientHello, which then fails. ingresslib keeps the rule
of nginx's own ``listen ... proxy_protocol``, v1 or v2, on every port: a load balancer set to
send it always does.)

The reader follows nginx's src/core/ngx_proxy_protocol.c ``ngx_proxy_protocol_read`` (v1 text)
and ``ngx_proxy_protocol_v2_read`` (v2 binary):

- v1: ``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` or ``PROXY UNKNOWN ...\\r\\n``
  (UNKNOWN: everything up to the first CRLF is skipped, a bare LF included), at most 107
  bytes (``NGX_PROXY_PROTOCOL_V1_MAX_HEADER``, the specification's maximum). An address is
  any run of hex digits, ``:`` and ``.`` (ngx_proxy_protocol_read_addr); the realip module
  then parses it (ngx_parse_addr) and keeps the TCP peer when it is no address, which
  :attr:`ProxyHeader.source` says with ``None``. A port is decimal, 0 to 65535 (ngx_atoi).
- v2: the 12-byte signature, version 2 (else "unknown PROXY protocol version"), a command
  (only PROXY, 1, carries addresses: LOCAL and the others are read and skipped, nginx "return
  end"), the family and transport (INET or INET6 over STREAM carry addresses; UNIX, UNSPEC and
  DGRAM are skipped the same way), the length (an address block shorter than the family's is
  a broken header; a header longer than ``NGX_PROXY_PROTOCOL_MAX_HEADER``, 4096 bytes, is "too
  large"), then TLVs, kept as raw bytes and never read (nginx reads them only for its
  ``$proxy_protocol_tlv_*`` variables).

Anything else is a broken header: nginx logs "broken header" and closes the connection
(ngx_http_wait_request_handler: "if (p == NULL) { ngx_http_close_connection(c); return; }").
Unlike nginx, which parses the bytes of one read, the reader takes the header split across
reads (:meth:`ProxyProtocolReader.feed` answers "need more" until it is whole).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from .._iptext import ipv6_text
from ._headers import _ngx_addr

__all__ = ["ProxyHeader", "ProxyProtocolError", "ProxyProtocolReader", "parse_go_duration",
           "accepting", "admitted"]

_log = logging.getLogger("ingresslib.server")

#: ``NGX_PROXY_PROTOCOL_V2_SIGNATURE``.
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: ``NGX_PROXY_PROTOCOL_V1_MAX_HEADER``: a v1 line, CRLF included, is at most this long.
V1_MAX = 107
#: ``NGX_PROXY_PROTOCOL_MAX_HEADER``: a whole v2 header (16 bytes, addresses, TLVs).
MAX_HEADER = 4096
_V1_PREFIX = b"PROXY "
_V1_UNKNOWN = b"PROXY UNKNOWN"
_ADDR_CHARS = frozenset(b"0123456789abcdefABCDEF:.")


class ProxyProtocolError(ValueError):
    """A broken PROXY protocol header (nginx closes the connection)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One PROXY protocol header, read.

    ``source`` / ``destination``: ``(address, port)`` as nginx prints them
    (``$proxy_protocol_addr``/``_port``, ``$proxy_protocol_server_addr``/``_port``), or None
    when the header carries none (v1 ``UNKNOWN``; v2 LOCAL, UNSPEC, UNIX, DGRAM). In a v1
    header an address that is no IP address is None too, its port kept in ``source_port`` /
    ``destination_port`` (nginx's realip then keeps the TCP peer)."""

    version: int
    #: v1: ``"TCP4"``, ``"TCP6"`` or ``"UNKNOWN"``; v2: the command, ``"PROXY"`` or
    #: ``"LOCAL"`` (another one: ``"0x<n>"``).
    kind: str
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    source_port: int | None = None
    destination_port: int | None = None
    #: v2: the TLV bytes after the addresses, unread (b"" for v1).
    tlvs: bytes = b""


def _shown(data: bytes) -> str:
    """nginx's "broken header" text: the bytes up to the first CR or LF."""
    end = len(data)
    for sep in (b"\r", b"\n"):
        i = data.find(sep)
        if 0 <= i < end:
            end = i
    text = data[:min(end, 120)].decode("latin-1")
    return repr(text) + ("..." if end > 120 else "")


def _broken(data: bytes | bytearray) -> ProxyProtocolError:
    return ProxyProtocolError(f"broken header: {_shown(bytes(data))}")


def _port(text: bytes) -> int | None:
    # ngx_atoi: decimal digits only, at least one, as many as come (leading zeros included:
    # "000080" is 80); the port "n < 0 || n > 65535" is invalid. (A v1 line is at most 107
    # bytes: int() never sees a long run.)
    if not text or not text.isdigit():
        return None
    n = int(text)
    return n if n <= 65535 else None


def _v1(line: bytes) -> ProxyHeader:
    """One v1 line, ``line`` ending with its first LF (ngx_proxy_protocol_read)."""
    if len(line) < 8 or not line.startswith(_V1_PREFIX):
        raise _broken(line)
    rest = line[6:]  # (UNKNOWN is read by ProxyProtocolReader.feed: up to a CRLF)
    if len(rest) < 5 or not rest.startswith(b"TCP") or rest[3:4] not in (b"4", b"6") \
            or rest[4:5] != b" ":
        raise _broken(line)
    fields = rest[5:]
    # src and dst: runs of address characters, each ended by one space.
    addrs: list[bytes] = []
    pos = 0
    for _ in range(2):
        end = fields.find(b" ", pos)
        if end < 0 or not _ADDR_CHARS.issuperset(fields[pos:end]):
            raise _broken(line)
        addrs.append(fields[pos:end])
        pos = end + 1
    # sport up to a space, dport up to the CR, then the LF that ends the line.
    end = fields.find(b" ", pos)
    if end < 0:
        raise _broken(line)
    sport = _port(fields[pos:end])
    tail = fields[end + 1:]
    if sport is None or not tail.endswith(b"\r\n"):
        raise _broken(line)
    dport = _port(tail[:-2])
    if dport is None:
        raise _broken(line)
    src = _ngx_addr(addrs[0].decode("ascii"))
    dst = _ngx_addr(addrs[1].decode("ascii"))
    return ProxyHeader(1, "TCP" + chr(rest[3]),
                       (src, sport) if src is not None else None,
                       (dst, dport) if dst is not None else None, sport, dport)


def _ipv4_text(p: bytes) -> str:
    return "%d.%d.%d.%d" % (p[0], p[1], p[2], p[3])


def _v2(header: bytes) -> ProxyHeader:
    """A whole v2 header (ngx_proxy_protocol_v2_read); its length field was checked."""
    command = header[12] & 0x0F
    kind = "PROXY" if command == 1 else "LOCAL" if command == 0 else f"0x{command:x}"
    body = header[16:]
    family, transport = header[13] >> 4, header[13] & 0x0F
    # "only PROXY is supported", "only STREAM is supported": the header is skipped.
    if command != 1 or transport != 1 or family not in (1, 2):
        return ProxyHeader(2, kind)
    size = 12 if family == 1 else 36
    if len(body) < size:
        # "if ((size_t) (end - buf) < sizeof(ngx_proxy_protocol_inet_addrs_t)) return NULL"
        raise ProxyProtocolError(f"broken header: the v2 length {len(body)} is shorter than "
                                 f"the {'IPv4' if family == 1 else 'IPv6'} addresses "
                                 f"({size} bytes)")
    n = 4 if family == 1 else 16
    text = _ipv4_text if family == 1 else ipv6_text
    src, dst = text(body[:n]), text(body[n:2 * n])
    sport = body[2 * n] << 8 | body[2 * n + 1]
    dport = body[2 * n + 2] << 8 | body[2 * n + 3]
    return ProxyHeader(2, kind, (src, sport), (dst, dport), sport, dport, bytes(body[size:]))


class ProxyProtocolReader:
    """Reads one PROXY protocol header from the first bytes of a connection.

    :meth:`feed` the bytes as they come: it returns None while the header is not whole, the
    :class:`ProxyHeader` once it is (the bytes after it are then :attr:`rest`), and raises
    :class:`ProxyProtocolError` as soon as the bytes cannot begin a valid header (the
    connection is then closed, as nginx closes it)."""

    __slots__ = ("_buf", "rest", "header")

    def __init__(self) -> None:
        self._buf = bytearray()
        #: The bytes that followed the header (the client's own), once it is read.
        self.rest = b""
        self.header: ProxyHeader | None = None

    def feed(self, data: bytes) -> ProxyHeader | None:
        if self.header is not None:
            raise RuntimeError("the PROXY protocol header was already read")
        buf = self._buf
        buf += data
        n = len(buf)
        if not n:
            return None
        if buf[0] == SIGNATURE[0]:
            if buf[:12] != SIGNATURE[:min(n, 12)]:
                raise _broken(buf)
            if n < 16:
                return None
            version = buf[12] >> 4
            if version != 2:
                raise ProxyProtocolError(f"unknown PROXY protocol version: {version}")
            total = 16 + (buf[14] << 8 | buf[15])
            if total > MAX_HEADER:
                raise ProxyProtocolError(f"header is too large: {total} bytes, at most "
                                         f"{MAX_HEADER}")
            if n < total:
                return None
            header = _v2(bytes(buf[:total]))
        else:
            if buf[:6] != _V1_PREFIX[:min(n, 6)]:
                raise _broken(buf)
            if buf.startswith(_V1_UNKNOWN):
                # ngx_proxy_protocol_read: "UNKNOWN ... goto skip", and skip looks for the
                # first CRLF ("if (p[0] == CR && p[1] == LF) return p + 2"): a bare LF before
                # it is skipped like any other byte, not the end of the line.
                crlf = buf.find(b"\r\n", len(_V1_UNKNOWN), V1_MAX)
                if crlf < 0:
                    if n >= V1_MAX:
                        raise ProxyProtocolError(f"broken header: {_shown(bytes(buf))}: no "
                                                 f"CRLF within {V1_MAX} bytes")
                    return None
                total = crlf + 2
                self.rest = bytes(buf[total:])
                self._buf = bytearray()
                self.header = ProxyHeader(1, "UNKNOWN")
                return self.header
            lf = buf.find(b"\n", 0, V1_MAX)
            if lf < 0:
                if n >= V1_MAX:
                    raise ProxyProtocolError(f"broken header: {_shown(bytes(buf))}: no end of "
                                             f"line within {V1_MAX} bytes")
                return None
            total = lf + 1
            header = _v1(bytes(buf[:total]))
        self.rest = bytes(buf[total:])
        self._buf = bytearray()
        self.header = header
        return header


# --- proxy-protocol-header-timeout: a Go duration ---------------------------------------------

#: Go's time.ParseDuration units, in seconds.
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` (``"5s"``, ``"1m30s"``, ``"1.5h"``, ``"300ms"``; ``"0"``
    alone needs no unit), in seconds. ingress-nginx reads ``proxy-protocol-header-timeout``
    with it (configmap.go ReadConfig) and keeps the default 5s, with a warning, when it fails;
    a ValueError here. A negative duration is refused too (a deadline already past)."""
    s = text
    if s in ("0", "+0", "-0"):
        return 0.0
    if s[:1] in ("+", "-"):
        if s[0] == "-":
            raise ValueError("must not be negative")
        s = s[1:]
    if not s:
        raise ValueError("is not a Go duration")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _GO_PART.match(s, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError('is not a Go duration such as "5s", "1m30s" or "500ms" '
                             "(time.ParseDuration: a number then a unit, ns, us, ms, s, m "
                             "or h)")
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if total > (1 << 63) / 1e9:
        raise ValueError("is more than Go's largest duration (about 292 years)")
    return total


# --- the server's accept step -------------------------------------------------------------------
# (An asyncio protocol by its methods: the core's modules import no asyncio, API.md; the
# server's module, ``_server.py``, gives it its sockets.)

def admitted(server: Any, transport: Any) -> bool:
    """A new socket's admission (nginx counts a connection in worker_connections from accept):
    False, the socket aborted and counted in ``server.refused``, when the server is shutting
    down or holds ``max_connections`` sockets already. The first step of every listener's
    protocol that sees the socket before its ``_Downstream`` (``_Accept`` here,
    ``_server._TLSAccept``)."""
    if server.draining or server.sockets_held() >= server.max_connections:
        transport.abort()
        server.refused += 1
        return False
    return True


class _Accept:
    """A socket's first protocol with ``use-proxy-protocol`` on: reads the header (within
    ``proxy-protocol-header-timeout``), then gives the socket to ``inner`` (the listener's own
    protocol), fed the bytes that followed the header. The socket counts against
    ``max_connections`` from accept (in ``server.handshaking``), as nginx counts a connection.

    ``inner.proxied`` is set before its ``connection_made``: ``((ip, port), (ip, port))``,
    the header's source and destination, when it names a source and the TCP peer is inside
    ``proxy-real-ip-cidr`` (nginx's ``set_real_ip_from``); else None (the TCP peer and the
    listener's port stand)."""

    def __init__(self, server: Any, inner: Any) -> None:
        self.server = server
        self.inner = inner
        self.reader = ProxyProtocolReader()
        self.transport: Any = None
        self.timer: Any = None

    def connection_made(self, transport: Any) -> None:
        srv = self.server
        if not admitted(srv, transport):
            return
        self.transport = transport
        srv.handshaking[self] = transport
        s = srv.settings
        timeout = s.proxy_protocol_header_timeout or s.client_header_timeout or 60.0
        self.timer = srv.loop.call_later(timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        try:
            header = self.reader.feed(data)
        except ProxyProtocolError as e:
            peer = transport.get_extra_info("peername")
            _log.error("%s while reading PROXY protocol, client: %s", e,
                       peer[0] if peer else "-")
            self._done()
            transport.close()
            return
        if header is not None:
            self._hand_off(transport, header)

    def eof_received(self) -> bool:
        return False  # gone before its header: closed

    def pause_writing(self) -> None:  # (nothing is written before the header is read)
        pass

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        self._done()

    def _timed_out(self) -> None:
        self.timer = None
        transport = self.transport
        self._done()
        if transport is not None:
            transport.abort()

    def _done(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None
        self.server.handshaking.pop(self, None)

    def _hand_off(self, transport: Any, header: ProxyHeader) -> None:
        self._done()
        inner = self.inner
        proxied = None
        dport = header.destination_port
        if header.source is not None and dport is not None:
            peer = transport.get_extra_info("peername")
            if peer and self.server.proxy._trust.trusted(peer[0]):
                # (the destination's port is what is used: $proxy_protocol_server_port)
                proxied = (header.source, header.destination or ("", dport))
        inner.proxied = proxied
        transport.set_protocol(inner)
        inner.connection_made(transport)
        rest = self.reader.rest
        if rest and not transport.is_closing():
            _feed(transport.get_protocol(), rest, transport)


def _feed(protocol: Any, data: bytes, transport: Any) -> None:
    """``data`` to the protocol that owns the socket now, as the transport would give it: the
    listener's own protocol may have handed the socket on in its ``connection_made`` (a TLS
    listener with a store that chooses no certificate from the ClientHello puts asyncio's TLS
    protocol on at once), and that one is a buffered protocol, without ``data_received``."""
    get_buffer = getattr(protocol, "get_buffer", None)
    if get_buffer is None:
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view and not transport.is_closing():
        buf = get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


def accepting(server: Any, inner: Any) -> Any:
    """The protocol a listener of ``server`` gives a new socket: ``inner`` itself, or, with
    ``use_proxy_protocol`` on in the server's settings (read at each accept, so a settings
    change applies to the connections accepted after it), the PROXY protocol reader in front of
    it."""
    if server.settings.use_proxy_protocol:
        return _Accept(server, inner)
    return inner
