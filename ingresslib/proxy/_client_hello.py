"""The server name a TLS ClientHello asks for, read before OpenSSL sees the hello.

Why not ``SSLContext.sni_callback``: CPython's ``_ssl`` decodes the name as ASCII before calling
it, and a ClientHello whose name is raw UTF-8 (or any byte >= 0x80) makes that decode fail: the
callback never runs, ``sys.unraisablehook`` prints "Exception ignored ... UnicodeDecodeError"
(a traceback on stderr, per handshake, for any client to repeat) and the handshake ends with an
``internal_error`` alert. nginx serves such a name the default certificate (ingress-nginx
``certificate.lua`` finds no certificate for it and falls back to the default one). The HTTPS
listener therefore reads the hello itself, picks the certificate's context from these bytes, and
hands OpenSSL a context without a Python callback (also for a second ClientHello after a TLS 1.3
HelloRetryRequest, which OpenSSL would otherwise pass to the callback again).

Only what is needed to find the name is parsed; anything unexpected (not a handshake record, not
a ClientHello, a malformed or oversized one) ends the reading with no name: the default
certificate's context is used and OpenSSL, which parses the hello again, answers as it would.

The first byte also says whether the client speaks TLS at all, as nginx decides it
(``ngx_http_ssl_handshake`` peeks one byte: "if (buf[0] & 0x80 /* SSLv2 */ || buf[0] == 0x16
/* SSLv3/TLSv1 */)" starts the handshake, anything else goes on as plain HTTP): a first byte
that is neither ends the reading at once with :attr:`ClientHelloReader.plain` set, and the
listener answers the request as nginx does (see ``_server._TO_HTTPS``).
"""

from __future__ import annotations

__all__ = ["ClientHelloReader"]

#: OpenSSL's own limit for a ClientHello message (ssl/statem/statem_srvr.c
#: ``CLIENT_HELLO_MAX_LENGTH``): anything it would accept is read whole.
_MAX_HELLO = 131396
#: Bytes buffered at most (records may carry the hello in small fragments); asyncio's TLS
#: protocol holds a read buffer of this size per connection anyway.
_MAX_BUFFERED = 256 * 1024
_HANDSHAKE = 22
_SSLV2 = 0x80
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_HOST_NAME = 0


class ClientHelloReader:
    """Collects a connection's first bytes until its ClientHello is complete.

    :meth:`feed` returns True once the reading is over; then :attr:`server_name` is the name
    the client sent (raw bytes, None without one or when the bytes are not a readable
    ClientHello) and :attr:`data` everything received, to be given to the TLS layer as is.
    :attr:`plain` is True when the first byte is not one a TLS client sends (nginx's test):
    then :attr:`data` is a plain-HTTP client's first bytes, not for the TLS layer. Linear in
    the bytes received, whatever their fragmentation.

    >>> r = ClientHelloReader()
    >>> r.feed(b"G"), r.plain, r.server_name
    (True, True, None)
    >>> r = ClientHelloReader()
    >>> r.feed(b"\\x16\\x03\\x01"), r.plain
    (False, False)
    """

    __slots__ = ("data", "server_name", "plain", "_pos", "_hs")

    def __init__(self) -> None:
        self.data = bytearray()
        self.server_name: bytes | None = None
        self.plain = False
        self._pos = 0                 # the next record's offset in ``data``
        self._hs = bytearray()        # handshake bytes gathered from the records so far

    def feed(self, chunk: bytes) -> bool:
        data = self.data
        if chunk and chunk[0] != _HANDSHAKE and not data and not chunk[0] & _SSLV2:
            # Decided on the first byte, as nginx does: neither a TLS record nor an SSLv2
            # ClientHello (whose 2-byte record header has the high bit set).
            self.plain = True
            data += chunk
            return True
        data += chunk
        while True:
            pos = self._pos
            if len(data) < pos + 5:
                return len(data) > _MAX_BUFFERED
            # TLSPlaintext: type, legacy_record_version (3, x), length.
            if data[pos] != _HANDSHAKE or data[pos + 1] != 3:
                return True
            n = int.from_bytes(data[pos + 3:pos + 5], "big")
            if n == 0:
                return True
            if len(data) < pos + 5 + n:
                return len(data) > _MAX_BUFFERED
            hs = self._hs
            hs += data[pos + 5:pos + 5 + n]
            self._pos = pos + 5 + n
            if len(hs) < 4:
                continue
            if hs[0] != _CLIENT_HELLO:
                return True
            size = int.from_bytes(hs[1:4], "big")
            if size > _MAX_HELLO:
                return True
            if len(hs) >= 4 + size:
                self.server_name = _server_name(bytes(hs[4:4 + size]))
                return True


def _server_name(body: bytes) -> bytes | None:
    """The first host_name of a ClientHello body's server_name extension (RFC 6066 §3)."""
    try:
        # legacy_version (2), random (32), legacy_session_id <0..32>
        p = 34
        p += 1 + body[p]
        # cipher_suites <2..2^16-2>, legacy_compression_methods <1..2^8-1>
        p += 2 + int.from_bytes(body[p:p + 2], "big")
        p += 1 + body[p]
        if p + 2 > len(body):
            return None   # no extensions
        end = min(p + 2 + int.from_bytes(body[p:p + 2], "big"), len(body))
        p += 2
        while p + 4 <= end:
            kind = int.from_bytes(body[p:p + 2], "big")
            size = int.from_bytes(body[p + 2:p + 4], "big")
            ext = body[p + 4:p + 4 + size]
            p += 4 + size
            if kind != _SERVER_NAME:
                continue
            # ServerNameList <1..2^16-1> of (name_type, HostName <1..2^16-1>)
            q, stop = 2, min(2 + int.from_bytes(ext[0:2], "big"), len(ext))
            while q + 3 <= stop:
                name_type = ext[q]
                length = int.from_bytes(ext[q + 1:q + 3], "big")
                name = ext[q + 3:q + 3 + length]
                if name_type == _HOST_NAME and len(name) == length and length:
                    return name
                q += 3 + length
            return None
    except IndexError:
        return None
    return None
