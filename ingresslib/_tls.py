"""Certificates for the HTTPS listener, chosen by SNI.

SEMANTICS §10: "Certificates come from ``kubernetes.io/tls`` Secrets named in ``spec.tls``,
chosen by SNI (wildcard certificates cover one label); routing still uses the Host header.
Unknown SNI gets a generated default certificate. [...] Certificate changes apply without
restart."

The listening :class:`ssl.SSLContext` carries the default certificate and an ``sni_callback``
that swaps in the per-host context (the stdlib recipe: assign ``ssl_obj.context``). The host map
is replaced as a whole on :meth:`CertificateStore.update`, so a handshake sees either the old or
the new set, never a half-built one, and connections already established keep their certificate.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._models import Ingress, Secret
from ._resources import Resources

__all__ = [
    "CertificateStore",
    "TLSProblem",
    "generate_certificate",
    "DEFAULT_CERT_NAME",
]

_log = logging.getLogger("ingresslib.tls")

#: The subject ingress-nginx gives the certificate it serves for unknown names.
DEFAULT_CERT_NAME = "Kubernetes Ingress Controller Fake Certificate"


@dataclass(frozen=True, slots=True)
class TLSProblem:
    """A TLS entry that could not be used (missing Secret, bad PEM...); the host then gets the
    default certificate, as ingress-nginx does."""

    object: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.field}: {self.message}"


def generate_certificate(
    hosts: Iterable[str] = ("ingress.local",),
    *,
    common_name: str | None = None,
    days: int = 365,
) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``hosts``: ``(cert_pem, key_pem)``.

    EC P-256, because generating it is instant (an RSA key takes ~50 ms or more).

    >>> crt, key = generate_certificate(["example.test"])
    >>> crt.startswith(b"-----BEGIN CERTIFICATE-----")
    True
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names = list(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name or (names[0] if names else "ingress"))]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in names]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _new_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # The proxy speaks HTTP/1.1 only; advertising it lets clients that insist on ALPN proceed.
    ctx.set_alpn_protocols(["http/1.1"])
    # load_cert_chain only reads files: write the PEM to a private temporary file and remove it
    # at once (trustme does the same for its `tempfile()` helpers).
    fd, path = tempfile.mkstemp(prefix="ingresslib-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem.rstrip(b"\n") + b"\n" + cert_pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx


class CertificateStore:
    """Per-host TLS contexts built from the TLS Secrets the Ingresses name.

    >>> store = CertificateStore()
    >>> ctx = store.server_context()      # give this to the HTTPS listener
    >>> problems = store.update(Resources())
    >>> store.context_for("unknown.test") is store.default_context
    True
    """

    def __init__(self, default_cert: tuple[bytes, bytes] | None = None) -> None:
        if default_cert is None:
            default_cert = generate_certificate(["ingress.local"], common_name=DEFAULT_CERT_NAME)
        self.default_context = _new_context(*default_cert)
        #: Exact host -> context; wildcard suffix (``".example.test"``) -> context.
        self._exact: Mapping[str, ssl.SSLContext] = {}
        self._wild: Mapping[str, ssl.SSLContext] = {}
        # Contexts by a digest of their PEM, so a reload that keeps a certificate reuses it.
        self._cache: dict[bytes, ssl.SSLContext] = {}
        self._server_ctx: ssl.SSLContext | None = None

    # -- building -----------------------------------------------------------------------------

    def update(
        self, res: Resources, ingresses: Iterable[Ingress] | None = None
    ) -> list[TLSProblem]:
        """Replace the host map from ``res`` (only ``ingresses`` when given: the served ones).

        Returns the problems found; the affected hosts fall back to the default certificate.
        """
        secrets: dict[tuple[str, str], Secret] = {
            (s.metadata.namespace, s.metadata.name): s for s in res.secrets
        }
        exact: dict[str, ssl.SSLContext] = {}
        wild: dict[str, ssl.SSLContext] = {}
        problems: list[TLSProblem] = []
        cache: dict[bytes, ssl.SSLContext] = {}
        for ing in res.ingresses if ingresses is None else ingresses:
            obj = f"Ingress {ing.metadata.ref}"
            for i, tls in enumerate(ing.spec.tls):
                field = f"spec.tls[{i}].secretName"
                if not tls.secret_name:
                    problems.append(TLSProblem(obj, field, "no secretName"))
                    continue
                secret = secrets.get((ing.metadata.namespace, tls.secret_name))
                if secret is None:
                    problems.append(TLSProblem(
                        obj, field, f"Secret {ing.metadata.namespace}/{tls.secret_name} not found"))
                    continue
                crt, key = secret.get_bytes("tls.crt"), secret.get_bytes("tls.key")
                if not crt or not key:
                    problems.append(TLSProblem(
                        obj, field,
                        f"Secret {secret.metadata.ref} has no tls.crt/tls.key (type {secret.type})"))
                    continue
                digest = hashlib.sha256(crt + b"\0" + key).digest()
                ctx = cache.get(digest) or self._cache.get(digest)
                if ctx is None:
                    try:
                        ctx = _new_context(crt, key)
                    except (ssl.SSLError, ValueError) as e:
                        problems.append(TLSProblem(
                            obj, field, f"Secret {secret.metadata.ref}: unusable certificate: {e}"))
                        continue
                cache[digest] = ctx
                # API doc of IngressTLS.hosts: "Defaults to the wildcard host setting for the
                # loadbalancer controller fulfilling this Ingress, if left unspecified." We read
                # that as: the hosts of this Ingress's own rules.
                hosts = tls.hosts or tuple(r.host for r in ing.spec.rules if r.host)
                for host in hosts:
                    h = host.lower().rstrip(".")
                    if h.startswith("*."):
                        wild.setdefault(h[1:], ctx)
                    else:
                        exact.setdefault(h, ctx)
        # One assignment each: a concurrent handshake sees the old maps or the new ones.
        self._exact, self._wild, self._cache = exact, wild, cache
        for p in problems:
            _log.warning("tls: %s", p)
        return problems

    # -- lookup -------------------------------------------------------------------------------

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """The context to answer a ClientHello with ``server_name``.

        A wildcard covers exactly one label: ``*.example.test`` serves ``a.example.test``, not
        ``example.test`` nor ``a.b.example.test`` (RFC 6125 §6.4.3, and what clients accept).
        """
        if not server_name:
            return self.default_context
        name = server_name.lower().rstrip(".")
        ctx = self._exact.get(name)
        if ctx is not None:
            return ctx
        dot = name.find(".")
        if dot > 0:
            ctx = self._wild.get(name[dot:])
            if ctx is not None:
                return ctx
        return self.default_context

    @property
    def hosts(self) -> frozenset[str]:
        """Every host name with a certificate (wildcards as ``*.suffix``)."""
        return frozenset(self._exact) | frozenset("*" + s for s in self._wild)

    def _sni_callback(
        self, ssl_obj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        ctx = self.context_for(server_name)
        if ctx is not _ctx:
            ssl_obj.context = ctx
        return None

    def server_context(self) -> ssl.SSLContext:
        """The context for the listening socket: the default certificate plus SNI selection."""
        if self._server_ctx is None:
            self._server_ctx = self.default_context
            self._server_ctx.sni_callback = self._sni_callback
        return self._server_ctx
