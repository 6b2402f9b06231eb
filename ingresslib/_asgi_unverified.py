"""IngressASGI on a host with ``auth-tls-*`` served unverified
(``deny-unenforced-access-annotations: "false"``): the client's own ``ssl-client-*`` headers
never reach the app.

IngressASGI verifies no client certificate. By default every request of such a host answers
503; with unenforced access annotations served, the app got the request as the client sent it,
``ssl-client-verify: SUCCESS`` and ``ssl-client-subject-dn: CN=admin`` included: the very
headers an app behind ingress-nginx trusts as the handshake's result, since nginx.tmpl writes
``proxy_set_header ssl-client-verify $ssl_client_verify;`` (and ``-subject-dn``, ``-issuer-dn``,
``-cert``) in every location of such a server, so a client's value is never passed there. The
app now gets none of them (it can tell that nothing was verified); their underscore spellings
go too (a CGI/WSGI app reads ``ssl_client_verify`` as the same ``HTTP_SSL_CLIENT_VERIFY``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .proxy._clientcert import CLIENT_CERT_NAMES

__all__ = ["without_client_cert_headers"]


def without_client_cert_headers(headers: Iterable[Any]) -> list[tuple[Any, Any]]:
    """``headers`` (an ASGI header list) without any ``ssl-client-*`` spelling."""
    return [(k, v) for k, v in headers
            if (k.encode("latin-1") if isinstance(k, str) else bytes(k)).lower()
            not in CLIENT_CERT_NAMES]
