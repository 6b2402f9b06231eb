"""The driver's side of ``proxy-ssl-*`` (proxy/_proxy_ssl.py): the ``SSLContext`` of an
:class:`UpstreamTLS`. Outside proxy/, whose modules but _server.py import no ``ssl``."""

from __future__ import annotations

import os
import ssl

from ._tls import _no_passphrase, _pem_file
from .proxy._proxy_ssl import UpstreamTLS

__all__ = ["client_context"]


def client_context(tls: UpstreamTLS) -> ssl.SSLContext:
    """The ``SSLContext`` of ``tls``; ``ssl.SSLError`` (or ``ValueError``) when OpenSSL refuses
    a value (a cipher list selecting no cipher: nginx's "SSL_CTX_set_cipher_list failed"). The
    name and the depth are checked after the handshake (proxy/_proxy_ssl.py ``peer_problem``):
    Python checks a name only together with SNI, nginx separately."""
    if tls.verify and tls.ca is None:
        # proxy/_proxy_ssl.py UNUSABLE: the route's Secret cannot be used (fail closed).
        raise ValueError("verification without a CA: the proxy-ssl-secret cannot be used")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if tls.verify and tls.ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=tls.ca.decode("ascii", "replace"))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    versions = [ssl.TLSVersion.TLSv1_2 if p == "TLSv1.2" else ssl.TLSVersion.TLSv1_3
                for p in tls.protocols]
    ctx.minimum_version = min(versions)
    ctx.maximum_version = max(versions)
    ctx.set_ciphers(tls.ciphers)
    if tls.cert is not None and tls.key is not None:
        fd, path, in_memory = _pem_file()
        try:
            key_fd, key_path, key_in_memory = _pem_file()
        except BaseException:
            os.close(fd)
            if not in_memory:
                os.unlink(path)
            raise
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(tls.cert)
            with os.fdopen(key_fd, "wb", closefd=False) as f:
                f.write(tls.key)
            ctx.load_cert_chain(path, key_path, password=_no_passphrase)
        finally:
            for one, one_path, one_in_memory in ((fd, path, in_memory),
                                                 (key_fd, key_path, key_in_memory)):
                os.close(one)
                if not one_in_memory:
                    os.unlink(one_path)
    return ctx
