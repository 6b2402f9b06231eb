"""The driver's side of ``proxy-ssl-*`` (proxy/_proxy_ssl.py): the ``SSLContext`` of an
:class:`UpstreamTLS`. Outside proxy/, whose modules but _server.py import no ``ssl``."""

from __future__ import annotations

import ssl

from ._tls import load_pem_pair
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
        load_pem_pair(ctx, tls.cert, tls.key)  # the client certificate nginx presents
    return ctx
