"""Certificates for the HTTPS listener, chosen by SNI.

SEMANTICS §10: "Certificates come from ``kubernetes.io/tls`` Secrets named in ``spec.tls``,
chosen by SNI (wildcard certificates cover one label); routing still uses the Host header.
Unknown SNI gets a generated default certificate. [...] Certificate changes apply without
restart."

The built-in HTTPS listener (``proxy/_server.py``) reads each ClientHello's server name itself
and switches the connection's TLS object to the chosen certificate's context
(:meth:`CertificateStore.context_for_hello`) before OpenSSL reads the hello; no context has a
Python SNI callback there, because CPython's cannot take a name that is not ASCII
(``proxy/_client_hello.py``). The session cache is :attr:`CertificateStore.default_context`'s,
one for every certificate. For a listener of your own, :meth:`CertificateStore.server_context`
carries the default certificate and an ``sni_callback`` that swaps in the per-host context (the
stdlib recipe: assign ``ssl_obj.context``). The host map is replaced as a whole on
:meth:`CertificateStore.update`, so a handshake sees either the old or the new set, never a
half-built one, and connections already established keep their certificate. A ``spec.tls``
entry without ``secretName`` (the field is optional) gives its hosts the default certificate, as
in ingress-nginx, and is noted at INFO level, not reported as a problem. ``ingresslib check``
(:func:`certificate_problems`) and the certificate-expiry metric (:func:`served_certificates`)
take the store's own decision (:func:`_select`), without a store.

Which hosts are TLS hosts, and which ``tls.hosts`` listings apply (tenancy), is decided from
the Ingresses alone in ``_tls_hosts.py`` (no ``ssl``); this module loads the certificates and
chooses among them (:func:`_select`), and re-exports :class:`TLSHosts`, :class:`TLSProblem` and
:func:`tls_hosts` from there.

Differences from ingress-nginx, on purpose (see :meth:`CertificateStore.update`; those about
which hosts are TLS hosts are in ``_tls_hosts.py``'s docstring): a ``tls.hosts`` name without a
rule in the same Ingress is served its certificate (lowest priority) within its tenant; a
certificate that does not cover a host, or a broken Secret, is skipped so that another Ingress's
valid certificate for the host can still be used (ingress-nginx pins its default certificate on
the first failure). As in ingress-nginx, a Secret that loaded before and is then updated with
broken content keeps its last good certificate, and a ``ca.crt`` (then a ``ca.crl``) that cannot
be read makes the whole Secret unusable (:func:`_ca_problem`), although ingresslib reads them
only for ``auth-tls-secret`` (client certificate authentication: ``proxy/_clientcert.py``; the
host's own context, :meth:`CertificateStore.client_auth`, :func:`client_cert_of`).
A host that an Ingress without ``tls`` names exactly, under another Ingress's ``*.`` wildcard
certificate, is given that certificate, as in ingress-nginx. The www / non-www twin of a host
with ``from-to-www-redirect`` is given that host's certificate when it covers the twin, as in
ingress-nginx (see ``_tls_hosts._www_twins``). Canary Ingresses supply no certificate, as in
ingress-nginx. No compression and no renegotiation, as nginx; protocols, ciphers, the ECDH
curve, session tickets (off: resumption from the session cache only) and
``ssl-reject-handshake`` are the ConfigMap's (``ProxySettings.ssl_*``, ingress-nginx's defaults
unless set: ``_tls_settings.py``), given by :meth:`CertificateStore.configure_tls` (or built
off the event loop: ``_tls_reconfigure.py``); a host's ``ssl-ciphers`` /
``ssl-prefer-server-ciphers`` annotations give it a context of its own, and on a rule without
``host`` the default server's (no SNI, or a name no server has). ``ssl-dh-param``'s Secret is
read from each update's Resources (:func:`_dh_params`): a change of its parameters builds
every context again, in that update.

Known limits of the ``ssl`` module, not settable from Python: the session lifetime is
OpenSSL's (2 h) rather than nginx's ``ssl_session_timeout 10m`` (``ssl-session-timeout``,
``ssl-session-cache-size`` and ``ssl-session-cache: "false"`` are warned about); an
``ssl-ecdh-curve`` list offers its first curve only; a client offering only
protocols other than ``http/1.1`` and ``http/1.0`` in ALPN (``h2`` alone) gets no ALPN answer
instead of nginx's ``no_application_protocol`` alert; the built-in listener, having no
servername callback, does not acknowledge the SNI (no empty ``server_name`` extension in the
ServerHello / EncryptedExtensions, which RFC 6066 §3 asks for and which clients do not need);
and a client
that offers a cached session under another SNI name is resumed (one session cache, looked up by
OpenSSL), which RFC 8446 §4.6.1 leaves to clients ("Clients MUST only resume if the new SNI value
is valid for the server certificate presented in the original session"). With
:meth:`CertificateStore.server_context` (a listener of your own), a non-ASCII server name fails
its handshake, and CPython reports the decoding error on stderr ("Exception ignored").
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import hashlib
import itertools
import logging
import os
import re
import ssl
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._canary import CANARY_ANNOTATION
from ._models import Ingress, IngressTLS, Secret
from ._resources import Resources
from ._table import SERVER_ALIAS, server_aliases
from ._tls_settings import (
    DEFAULT_TLS, INGRESS_NGINX_CIPHERS, ServerCiphers, TLSSettings, apply,
    default_server_ciphers, server_ciphers, tls_settings_of,
)
from ._tls_hosts import (
    TLSHosts,
    TLSProblem,
    _configured,
    _covers,
    _main_ingresses,
    _norm,
    _routed_by,
    _rule_hosts,
    _Tenancy,
    _tenancy,
    _www_twins,
    client_auth_problem,
    tls_hosts,
)
from ._www import FROM_TO_WWW

if TYPE_CHECKING:
    from .proxy._clientcert import ClientCert, ClientCertAuth

__all__ = [
    "CertificateStore",
    "TLSHosts",
    "TLSProblem",
    "tls_hosts",
    "generate_certificate",
    "DEFAULT_CERT_NAME",
    "INGRESS_NGINX_CIPHERS",
]

_log = logging.getLogger("ingresslib.tls")

#: The subject ingress-nginx gives the certificate it serves for unknown names.
DEFAULT_CERT_NAME = "Kubernetes Ingress Controller Fake Certificate"


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




class _EncryptedKey(ValueError):
    pass


class _NotCertificateFirst(ValueError):
    """tls.crt's first PEM block is not a ``CERTIFICATE`` one (:func:`_leaf_first`)."""


_V = TypeVar("_V")

# What OpenSSL's PEM reader looks for, to say which half of a Secret it could not read instead of
# its bare "PEM lib": a "-----BEGIN <type>-----" line (at the start of a line, as Go's
# pem.Decode also requires). Certificates: PEM_read_bio_X509_AUX's types; keys: any
# "... PRIVATE KEY" (PKCS#8, PKCS#1 "RSA", SEC1 "EC", "ENCRYPTED").
_CERT_BEGIN = re.compile(rb"^-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----", re.M)
_KEY_BEGIN = re.compile(rb"^-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----", re.M)
# A PKCS#8 encrypted key, or a traditional one with its "Proc-Type: 4,ENCRYPTED" header.
_ENCRYPTED = re.compile(
    rb"^(?:-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED)", re.M)

#: ingress-nginx warns when a served certificate expires within 10 days (controller.go
#: createServers: "cert.ExpireTime.Before(now.Add(240 * time.Hour))" -> "SSL certificate for
#: server %q is about to expire").
_EXPIRY_WARNING = datetime.timedelta(hours=240)

#: The default server's name: ingress-nginx's ``defServerName``, the ``host`` label its
#: ``ssl_expire_time_seconds`` gives the default certificate (``createServers``:
#: ``servers[defServerName] = &ingress.Server{Hostname: defServerName, SSLCert:
#: n.getDefaultSSLCertificate(), ...}``, exported by ``SetSSLExpireTime`` as every server).
DEFAULT_SERVER_NAME = "_"


def _validity(leaf_pem: bytes) -> tuple[datetime.datetime, datetime.datetime]:
    """``(not_before, not_after)`` of the first certificate in ``leaf_pem`` (aware, UTC)."""
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(leaf_pem)
    return leaf.not_valid_before_utc, leaf.not_valid_after_utc


def _date_problems(obj: str, field: str, ref: str | None, cert: _Cert,
                   now: datetime.datetime) -> list[TLSProblem]:
    """The warnings about a served certificate's dates (expired, not yet valid, expiring within
    10 days), as ingress-nginx's ``createServers`` warns for an Ingress host's ("SSL certificate
    for server %q expired" / "is about to expire"); the certificate is still served. ``ref``
    None: ``field`` names the Secret already ("its certificate")."""
    of = "its certificate" if ref is None else f"certificate of Secret {ref}"
    if cert.not_after < now:
        return [TLSProblem(
            obj, field, f"{of} expired on "
            f"{cert.not_after:%Y-%m-%d %H:%M:%S}Z (still served, as ingress-nginx does)",
            warning=True)]
    if cert.not_before > now:
        return [TLSProblem(
            obj, field, f"{of} is not valid before "
            f"{cert.not_before:%Y-%m-%d %H:%M:%S}Z (still served, as ingress-nginx does)",
            warning=True)]
    if cert.not_after < now + _EXPIRY_WARNING:
        return [TLSProblem(
            obj, field, f"{of} expires on "
            f"{cert.not_after:%Y-%m-%d %H:%M:%S}Z, in less than 10 days", warning=True)]
    return []


def _unusable(e: Exception, crt: bytes, key: bytes) -> str:
    """Why a Secret's PEM could not be loaded, naming the key (tls.crt/tls.key) at fault.
    Never quotes the PEM itself."""
    if isinstance(e, (_EncryptedKey, _NotCertificateFirst)):
        return str(e)
    if not _CERT_BEGIN.search(crt):
        # ingress-nginx (ssl.go CreateSSLCert): "no certificate PEM data found, make sure
        # certificate content starts with 'BEGIN CERTIFICATE'".
        return "tls.crt holds no PEM certificate (a '-----BEGIN CERTIFICATE-----' line)"
    if not _KEY_BEGIN.search(key):
        return "tls.key holds no PEM private key (a '-----BEGIN PRIVATE KEY-----' line)"
    why = f"{type(e).__name__}: {e}"
    if isinstance(e, ssl.SSLError) and e.reason in _SECURITY_REFUSALS:
        weak = _too_weak(e.reason, crt, key)
        if weak is not None:
            return weak
    if isinstance(e, ssl.SSLError) and "KEY_VALUES_MISMATCH" not in why:
        half = _unreadable_half(crt, key)
        if half is not None:
            # OpenSSL reads both halves as one file and reports "PEM lib (_ssl.c:3905)" or
            # "bad end line", naming neither: a block cut short or damaged by a copy is the
            # usual cause, and which key of the Secret holds it is what the user needs.
            detail = f" ({e.reason.lower().replace('_', ' ')})" if e.reason else ""
            return (f"{half} holds a PEM block that cannot be read{detail}: cut short or "
                    "damaged (its BEGIN/END lines and the base64 between them must be whole)")
    if "KEY_VALUES_MISMATCH" in why:
        # ingress-nginx: "certificate and private key does not have a matching public key".
        why = "tls.key does not match the certificate in tls.crt (key values mismatch)"
        if crt.count(b"-----BEGIN CERTIFICATE") > 1:
            # ingress-nginx's TLS doc: "Ensure that the certificate order is
            # leaf->intermediate->root".
            why += "; the chain must start with the leaf: leaf, intermediate, root"
    return why


#: OpenSSL's refusals of a readable certificate's key at the context's security level
#: (``ssl_security_cert``): the leaf's, a chain certificate's. (A weak signature digest,
#: ``CA_MD_TOO_WEAK``, keeps OpenSSL's words.)
_SECURITY_REFUSALS = frozenset({"EE_KEY_TOO_SMALL", "CA_KEY_TOO_SMALL"})
#: Security level -> the security bits it requires (OpenSSL's SSL_CTX_set_security_level).
_LEVEL_BITS = {1: 80, 2: 112, 3: 128, 4: 192, 5: 256}
#: Security bits -> the smallest RSA / DSA key giving them (NIST SP 800-57, as OpenSSL counts).
_RSA_MIN = {80: 1024, 112: 2048, 128: 3072, 192: 7680, 256: 15360}


def _too_weak(reason: str, crt: bytes, key: bytes) -> str | None:
    """In words, why OpenSSL refused a readable pair at the serving context's security level
    (``reason``, one of :data:`_SECURITY_REFUSALS`): which certificate, its key type and size,
    and the minimum; None when the certificate at fault cannot be told (OpenSSL's reason is
    then given). OpenSSL's own text ("ee key too small") names none of them."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    level = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).security_level
    bits = _LEVEL_BITS.get(level)
    if bits is None:
        return None
    certs: list[tuple[str, x509.Certificate]] = []
    for half, pem in (("tls.crt", crt), ("tls.key", key)):
        for kind, der in _pem_blocks(pem):
            if kind in (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"):
                try:
                    certs.append((half, x509.load_der_x509_certificate(der)))
                except ValueError:
                    pass
    if not certs:
        return None
    floor = f"OpenSSL's security level {level} asks for"
    for i, (half, cert) in enumerate(certs):
        if (i == 0) != (reason == "EE_KEY_TOO_SMALL"):
            continue   # the leaf's key for EE_KEY_TOO_SMALL, the chain's for CA_KEY_TOO_SMALL
        which = ("the certificate in tls.crt" if i == 0
                 else f"the chain's certificate {i + 1} (in {half})")
        pub = cert.public_key()
        if isinstance(pub, (rsa.RSAPublicKey, dsa.DSAPublicKey)):
            size, least = pub.key_size, _RSA_MIN[bits]
            kind_name = "RSA" if isinstance(pub, rsa.RSAPublicKey) else "DSA"
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            size, least, kind_name = pub.key_size, 2 * bits, f"EC ({pub.curve.name})"
        else:
            continue
        if size < least:
            return (f"{which} has a {size}-bit {kind_name} key, too small to serve: the "
                    f"minimum is {least} bits ({floor} {bits}-bit security)")
    return None


def _unreadable_half(crt: bytes, key: bytes) -> str | None:
    """``"tls.crt"`` or ``"tls.key"``: the half of a Secret whose PEM cannot be read, once
    loading both failed; None when both read (the failure is something else). Certificates are
    read by OpenSSL's own certificate reader (every block, as the chain is read: a truncated
    second certificate counts), in tls.crt and in a tls.key that carries some (a "key +
    fullchain" file: they join the chain, see :func:`_new_context`); the key by cryptography's
    key reader (which skips certificates before the key, as OpenSSL does). Only on a failed
    load: neither is on the serving path."""
    if _certificates_unreadable(crt):
        return "tls.crt"
    if _CERT_BEGIN.search(key) and _certificates_unreadable(key):
        return "tls.key"
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(key, password=None)
    except TypeError:
        return None   # encrypted: said as such (``_EncryptedKey``)
    except Exception:  # noqa: BLE001 -- ValueError, UnsupportedAlgorithm...: unreadable here
        return "tls.key"
    return None


#: Every byte above 127 as ``?``: cadata takes ASCII text only (anything else is a TypeError).
_ASCII_ONLY = bytes(range(128)) + b"?" * 128


def _certificates_unreadable(pem: bytes) -> bool:
    """Whether OpenSSL's certificate reader fails on a PEM block of ``pem`` (the other blocks'
    types are skipped, as when the chain is read)."""
    try:
        # A str is PEM to cadata (bytes would be DER), and must be ASCII: a byte above 127
        # (an "openssl x509 -text" dump's "Müller" before the block) is not what fails the
        # load, and must not make the probe itself raise. Inside a block it stays an error.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(
            cadata=pem.translate(_ASCII_ONLY).decode("ascii"))
    except (ssl.SSLError, ValueError):
        return True
    return False


#: A PEM BEGIN line as Go's ``pem.Decode`` finds one: at the start of a line, any type.
_PEM_BEGIN = re.compile(rb"^-----BEGIN ([^\r\n-]{0,200})-----[ \t]*\r?\n", re.M)


def _pem_blocks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """``(type, DER)`` of each PEM block of ``data`` whose base64 decodes, in order, as Go's
    ``pem.Decode`` loop reads them (a block whose base64 does not decode is skipped). Linear in
    ``data`` (a Secret's bytes are anyone's with write access to one): a BEGIN line without
    its END line ends the reading, where Go would look for a later block."""
    import base64
    import binascii

    pos = 0
    while True:
        m = _PEM_BEGIN.search(data, pos)
        if m is None:
            return
        end = data.find(b"-----END " + m.group(1) + b"-----", m.end())
        if end < 0:
            return
        body = data[m.end():end]
        pos = end + 1
        head, sep, rest = body.partition(b"\n\n")
        if sep and b":" in head:
            body = rest   # RFC 1421 headers (Proc-Type...) first
        try:
            yield m.group(1), base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            continue


def _ca_problem(ca: bytes, crl: bytes | None = None) -> str | None:
    """Why a TLS Secret's ``ca.crt`` (and then its ``ca.crl``) would make ingress-nginx refuse
    the whole Secret, or None.

    ingress-nginx reads ``ca.crt`` (the client CA of ``auth-tls-*``) with the certificate
    (backend_ssl.go ``getPemCertificate``: "if len(ca) > 0 { caCert, err :=
    ssl.CheckCACert(ca); if err != nil { return nil, fmt.Errorf("parsing CA certificate: %v",
    err) }"): every PEM block must be a certificate (``x509.ParseCertificate``), and there must
    be one ("error decoding CA certificate/s"); then a non-empty ``ca.crl`` ("if len(crl) > 0
    { err = ssl.ConfigureCRL(...)": "error configuring CRL certificate"): its first PEM block
    must be an ``X509 CRL`` that parses. The Secret is then not loaded at all and its hosts get
    the default certificate, which is what ingresslib does too, although it reads ``ca.crt``
    and ``ca.crl`` for nothing else (``auth-tls-secret`` reads its own Secret's). An empty ``ca.crt`` is
    skipped there, as here, and so is its ``ca.crl``."""
    from cryptography import x509

    found = 0
    for kind, der in _pem_blocks(ca):
        try:
            x509.load_der_x509_certificate(der)
        except ValueError:
            return (f"ca.crt: its PEM block {found + 1} "
                    f"({kind.decode('ascii', 'replace')!r}) is not a readable certificate")
        found += 1
    if not found:
        return ("ca.crt holds no readable PEM certificate (a '-----BEGIN CERTIFICATE-----' "
                "block, whole)")
    if not crl:
        return None
    # Go's pem.Decode: the first block that decodes; ConfigureCRL looks at that one only.
    for kind, der in _pem_blocks(crl):
        if kind != b"X509 CRL":
            return ("ca.crl: its first PEM block is not an '-----BEGIN X509 CRL-----' one "
                    f"({kind.decode('ascii', 'replace')!r})")
        try:
            x509.load_der_x509_crl(der)
        except ValueError:
            return "ca.crl: its X509 CRL block is not a readable CRL"
        return None
    return "ca.crl holds no readable PEM block (an '-----BEGIN X509 CRL-----' one)"


def _ca_refusal(ref: str | None, ca: bytes | None, crl: bytes | None) -> str | None:
    """The problem of Secret ``ref`` (either a rule's or the default one) when its ``ca.crt``
    or ``ca.crl`` makes ingress-nginx refuse it (:func:`_ca_problem`; an empty ``ca.crt`` is
    skipped), or None. ``ref`` None: the Secret is not named (the default Secret's problems
    name it first)."""
    why = _ca_problem(ca, crl) if ca else None
    named = "" if ref is None else f"Secret {ref}: "
    return None if why is None else (f"{named}unusable certificate: {why}; "
                                     "ingress-nginx refuses such a Secret (\"parsing CA "
                                     "certificate\")")


def _no_passphrase() -> bytes:
    # Without a password argument OpenSSL prompts on the controlling terminal ("Enter PEM pass
    # phrase:"), blocking the reload, or fails with a bare OSError when there is none. Secrets
    # carry no passphrase (ingress-nginx does not support encrypted keys either): refuse.
    raise _EncryptedKey("tls.key is encrypted (a passphrase-protected key is not supported)")


def _pem_file() -> tuple[int, str, bool]:
    """A private file for the PEM that load_cert_chain (which only reads files) will read:
    ``(fd, path, in_memory)``. Linux: an anonymous in-memory file, so the private key never
    reaches a file system; elsewhere a 0600 temporary file, removed right after loading."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd: int = memfd("ingresslib-pem", getattr(os, "MFD_CLOEXEC", 0))
        path = f"/proc/self/fd/{fd}"
        if os.path.exists(path):
            return fd, path, True
        os.close(fd)  # no /proc (some sandboxes): fall back to a file
    import tempfile   # here: its import (shutil, random...) would slow `ingresslib check`

    fd, path = tempfile.mkstemp(prefix="ingresslib-", suffix=".pem")
    return fd, path, False


def _new_context(cert_pem: bytes, key_pem: bytes,
                 cls: type[ssl.SSLContext] = ssl.SSLContext, tls: TLSSettings = DEFAULT_TLS,
                 ciphers: str | None = None, prefer: bool | None = None) -> ssl.SSLContext:
    ctx = cls(ssl.PROTOCOL_TLS_SERVER)
    # The ConfigMap's ssl-protocols, ssl-ciphers (ssl_prefer_server_ciphers), ssl-ecdh-curve
    # and ssl-session-tickets (``_tls_settings.apply``; ingress-nginx's defaults: TLSv1.2 and
    # TLSv1.3, INGRESS_NGINX_CIPHERS, no tickets); ``ciphers``/``prefer``: a server's own
    # (the ssl-ciphers / ssl-prefer-server-ciphers annotations).
    apply(ctx, tls, ciphers, prefer)
    # No TLS compression (CRIME; Python's default already). No renegotiation: nginx refuses
    # client-initiated renegotiation; OpenSSL 3 does by default, OpenSSL 1.1.1 does not.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # No session tickets by default (``apply``): ingress-nginx config.go NewDefault,
    # "SSLSessionTickets: false" (ssl_session_tickets off). OpenSSL's ticket key lives as long
    # as the process and is never rotated, so whoever obtains it can decrypt every recorded TLS
    # 1.2 session it sealed (no forward secrecy): ``ssl-session-tickets: "true"`` accepts that,
    # as nginx without ssl_session_ticket_key does. Sessions are resumed from the listening
    # context's session cache instead (ingress-nginx: ssl-session-cache on); TLS 1.3 then
    # issues stateful tickets. The listening context's options and protocol versions are what
    # count (the SNI switch changes the certificate and the cipher list, not the options);
    # every context carries them so that any of them can listen.
    # ALPN: what the proxy speaks, in nginx's order of preference without h2 (which it does
    # not speak: a client offering h2 and http/1.1 gets http/1.1). nginx's list
    # (ngx_http_ssl_module.c ``NGX_HTTP_ALPN_PROTOS``: "http/1.1", "http/1.0", "http/0.9",
    # chosen by ``ngx_http_ssl_alpn_select`` in the server's order) also names http/1.0, so a
    # client offering only http/1.0 is answered http/1.0 there. Not http/0.9: the proxy
    # refuses HTTP/0.9 requests.
    ctx.set_alpn_protocols(["http/1.1", "http/1.0"])
    if tls.dh_pem:
        # ssl-dh-param (nginx ssl_dhparam): the DHE suites' group, checked by _dh_params.
        _load_dh(ctx, tls.dh_pem)
    try:
        # The certificate first, as ingress-nginx writes its PEM (ssl.go CreateSSLCert:
        # "pemCertBuffer.Write(cert) ... Write([]byte("\n")) ... Write(key)"): the leaf is
        # tls.crt's first certificate even when tls.key carries certificates too (a "fullchain
        # + key" file given as tls.key); those join the chain, as there. The key from tls.key
        # alone, as ingress-nginx pairs them (``tls.X509KeyPair(cert, key)``: "tls: failed to
        # find any PEM data in key input", "private key does not match public key"). Read from
        # the chain's file, OpenSSL took the first key there, one that tls.crt carries (a
        # "cert + key" bundle) before tls.key's: a tls.key that does not match, or holds no
        # key at all, was served.
        load_pem_pair(ctx, cert_pem.rstrip(b"\r\n") + b"\n" + key_pem, key_pem)
    except ssl.SSLError as e:
        # Should the callback's exception not come through, OpenSSL reports "PEM lib".
        if _ENCRYPTED.search(key_pem):
            raise _EncryptedKey(
                "tls.key is encrypted (a passphrase-protected key is not supported)") from e
        raise
    return ctx


def _load_dh(ctx: ssl.SSLContext, pem: bytes) -> None:
    """``ctx.load_dh_params`` from PEM bytes (it reads only a file: a private ``_pem_file``,
    closed and removed right after)."""
    fd, path, in_memory = _pem_file()
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(pem)
        ctx.load_dh_params(path)
    finally:
        os.close(fd)
        if not in_memory:
            os.unlink(path)


#: The data key of the ``ssl-dh-param`` Secret (ingress-nginx: ``secret.Data["dhparam.pem"]``).
DH_PARAM_KEY = "dhparam.pem"


def _dh_params(res: Resources, ref: str, known: bytes = b""
               ) -> tuple[bytes, list[TLSProblem]]:
    """The DH parameters of ``ssl-dh-param`` (``ref``, "namespace/name") from ``res``'s
    Secrets: that Secret's ``dhparam.pem`` when usable, else b"" and why. As ingress-nginx's
    ``OnUpdate`` reads it (a missing Secret or key, or a first PEM block other than ``DH
    PARAMETERS``: ``ssl.AddOrUpdateDHParam`` "certificate %v contains invalid data"; nginx then
    gets no ``ssl_dhparam`` and the DHE suites are never chosen), plus what OpenSSL refuses
    (parameters it cannot read, or too small for its security level: nginx -t would fail)."""
    what = ("ConfigMap", "data.ssl-dh-param")
    try:
        ns, name = parse_secret_ref(ref)
    except ValueError as e:   # (ProxySettings checks it; a TLSSettings built by hand)
        return b"", [TLSProblem(*what, str(e))]
    secret = next((s for s in res.secrets
                   if s.metadata.namespace == ns and s.metadata.name == name), None)
    if secret is None:
        return b"", [TLSProblem(*what, f"Secret {ns}/{name} not found: no DH parameters, the "
                                "DHE cipher suites are not offered")]
    pem = secret.get_bytes(DH_PARAM_KEY)
    if not pem:
        return b"", [TLSProblem(*what, f"Secret {ns}/{name} has no {DH_PARAM_KEY} key (or it "
                                "is empty): no DH parameters, the DHE cipher suites are not "
                                "offered")]
    first = next(_pem_blocks(pem), None)
    why: str | None = None
    if first is None or first[0] != b"DH PARAMETERS":
        why = (f"its {DH_PARAM_KEY} must start with a '-----BEGIN DH PARAMETERS-----' block "
               "(what 'openssl dhparam' writes), as ingress-nginx requires")
    else:
        # That block alone (what OpenSSL reads of it: PEM_read_bio_DHparams stops there): the
        # bytes every context loads (_new_context) and the settings keep, whatever follows
        # it in the Secret (megabytes of it were written into each context's file).
        pem = _dh_pem_of(first[1])
        if known and pem == known:
            return pem, []   # in use already: checked when it was loaded
        try:
            _load_dh(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), pem)
        except (ssl.SSLError, OSError, ValueError) as e:
            why = f"OpenSSL refuses its {DH_PARAM_KEY} ({e})"
    if why is not None:
        return b"", [TLSProblem(*what, f"Secret {ns}/{name}: {why}: no DH parameters, the "
                                "DHE cipher suites are not offered")]
    return pem, []


def _dh_pem_of(der: bytes) -> bytes:
    """A ``DH PARAMETERS`` PEM block of ``der`` (64 base64 characters a line, as OpenSSL
    writes it)."""
    import base64

    text = base64.b64encode(der)
    lines = b"".join(text[i:i + 64] + b"\n" for i in range(0, len(text), 64))
    return b"-----BEGIN DH PARAMETERS-----\n" + lines + b"-----END DH PARAMETERS-----\n"


def load_pem_pair(ctx: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """``ctx.load_cert_chain`` from PEM bytes (it reads only files: two ``_pem_file``s, closed
    and removed whatever happens): the certificates of ``chain_pem``, the private key of
    ``key_pem`` alone. A passphrase-protected key is refused (``_no_passphrase``), never asked
    for on a terminal."""
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
            f.write(chain_pem)
        with os.fdopen(key_fd, "wb", closefd=False) as f:
            f.write(key_pem)
        ctx.load_cert_chain(path, key_path, password=_no_passphrase)
    finally:
        for one, one_path, one_in_memory in ((fd, path, in_memory),
                                             (key_fd, key_path, key_in_memory)):
            os.close(one)
            if not one_in_memory:
                os.unlink(one_path)


class _AuthContext(ssl.SSLContext):
    """A context that verifies client certificates (``auth-tls-*``): ``auth_key`` is the
    configuration's (:attr:`ClientCertAuth.key`), what :func:`client_cert_of` reports."""

    auth_key: str = ""
    auth_depth: int = 1
    #: Whether each client certificate's last full handshake here verified it within
    #: ``auth_depth`` (by the certificate's SHA-256; :func:`client_cert_of`): a resumed
    #: session carries no chain to count again, and nginx removes a refused one from its cache
    #: (``ngx_ssl_remove_cached_session``), which Python cannot. Not by session id: a TLS 1.3
    #: session is resumed by one of the tickets issued after the handshake, each a session of
    #: its own id. Bounded (:data:`_CHAIN_OUTCOMES`), least recently used first out.
    chain_outcomes: dict[bytes, bool]


def _auth_context(pem: tuple[bytes, bytes], auth: ClientCertAuth,
                  tls: TLSSettings = DEFAULT_TLS,
                  sc: ServerCiphers | None = None) -> ssl.SSLContext:
    """A context serving ``pem``'s certificate that asks for a client certificate and verifies
    it against ``auth``'s ``ca.crt`` (nginx's ``ssl_client_certificate`` and
    ``ssl_verify_client``; ``CERT_OPTIONAL`` for every mode, nginx answering no certificate
    after the handshake: ``proxy/_clientcert.refusal``), with its ``ca.crl`` (``ssl_crl``:
    nginx sets "X509_V_FLAG_CRL_CHECK|X509_V_FLAG_CRL_CHECK_ALL", the whole chain)."""
    ctx = _new_context(*pem, cls=_AuthContext, tls=tls,
                       ciphers=None if sc is None else sc.ciphers,
                       prefer=None if sc is None else sc.prefer)
    assert isinstance(ctx, _AuthContext)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if auth.crl:
        # cadata takes certificates only; a file takes certificates and CRLs.
        fd, path, in_memory = _pem_file()
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(auth.ca.rstrip(b"\r\n") + b"\n" + auth.crl)
            ctx.load_verify_locations(cafile=path)
        finally:
            os.close(fd)
            if not in_memory:
                os.unlink(path)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    else:
        ctx.load_verify_locations(cadata=auth.ca.decode("latin-1"))
    ctx.auth_key = auth.key
    ctx.auth_depth = auth.depth
    ctx.chain_outcomes = {}
    return ctx


#: How many client certificates an auth context remembers the chain outcome of
#: (:attr:`_AuthContext.chain_outcomes`): more than the sessions OpenSSL's cache holds (20480
#: by default), so that a session still resumable is not forgotten.
_CHAIN_OUTCOMES = 65536


def _refusing_context(pem: tuple[bytes, bytes],
                      tls: TLSSettings = DEFAULT_TLS) -> ssl.SSLContext:
    """A context that asks for a client certificate and trusts no CA: every certificate
    fails, none is accepted as verified (a ``ca.crt`` OpenSSL cannot load)."""
    ctx = _new_context(*pem, cls=_AuthContext, tls=tls)
    assert isinstance(ctx, _AuthContext)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.auth_key = "refused"
    ctx.chain_outcomes = {}
    return ctx


def client_cert_of(ssl_object: ssl.SSLObject | None) -> ClientCert | None:
    """What a finished handshake learnt of the client's certificate, for
    ``Proxy.connection(client_cert=...)``: None when the context asked for none (no
    ``auth-tls-*``). nginx's variables: ``$ssl_client_verify`` (``SUCCESS``; ``NONE``
    without a certificate; ``FAILED:certificate chain too long`` when the verified chain is
    deeper than ``auth-tls-verify-depth``: OpenSSL's depth, 0 the client's certificate, the
    trust anchor not counted), ``$ssl_client_s_dn`` / ``$ssl_client_i_dn`` (RFC 2253, as
    nginx >= 1.11.6 prints them with OpenSSL: :func:`rfc2253`) and
    ``$ssl_client_escaped_cert`` (the PEM, URL-encoded: nginx's
    NGX_ESCAPE_URI_COMPONENT keeps letters, digits and ``-._~``, as ``quote(safe="")``). A
    certificate that fails verification never gets here: the handshake fails (no verify
    callback in Python). A resumed session is judged by its certificate's last full handshake
    in this context (:attr:`_AuthContext.chain_outcomes`; one it no longer knows: ``FAILED``)."""
    if ssl_object is None:
        return None
    ctx = ssl_object.context
    if not isinstance(ctx, _AuthContext):
        return None
    from urllib.parse import quote

    from .proxy._clientcert import ClientCert

    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return ClientCert(ctx.auth_key)
    chain_of = getattr(ssl_object, "get_verified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    chain = chain_of() if chain_of is not None else None
    outcomes = ctx.chain_outcomes
    digest = hashlib.sha256(der).digest()
    within: bool | None
    if chain:
        # The chain holds the client's certificate, the CAs, then the trust anchor: depth d
        # allows d + 2 certificates (SSL_CTX_set_verify_depth).
        within = len(chain) <= ctx.auth_depth + 2
        outcomes.pop(digest, None)
        outcomes[digest] = within
        if len(outcomes) > _CHAIN_OUTCOMES:
            del outcomes[next(iter(outcomes))]
    else:
        # A resumed session (OpenSSL keeps no verified chain for it): the outcome of the
        # full handshake that verified this certificate here. Unknown (forgotten): refused,
        # never SUCCESS for a chain nobody counted.
        within = outcomes.pop(digest, None)
        if within is not None:
            outcomes[digest] = within
    if within:
        verify = "SUCCESS"
    elif within is None:
        verify = "FAILED:certificate chain not known (a resumed session)"
    else:
        verify = "FAILED:certificate chain too long"
    try:
        issuer, subject = _issuer_subject(der)
        subject_dn, issuer_dn = rfc2253(subject), rfc2253(issuer)
    except (ValueError, IndexError):   # (OpenSSL read the DER: not expected)
        subject_dn = issuer_dn = ""
    return ClientCert(ctx.auth_key, verify, subject_dn, issuer_dn,
                      quote(ssl.DER_cert_to_PEM_cert(der), safe=""))


# -- nginx's $ssl_client_s_dn / $ssl_client_i_dn -------------------------------------------------
#
# nginx (ngx_ssl_get_subject_dn, >= 1.11.6) prints a certificate's names with OpenSSL's
# ``X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253)`` (crypto/asn1/a_strex.c ``do_name_ex``,
# ``do_print_ex``, ``do_buf``, ``do_esc_char``). Written here from the certificate's DER, as
# cryptography's ``rfc4514_string`` differs: it keeps non-ASCII and control characters as they
# are (CR/LF into the DN a match-cn regex runs on), names attributes its own way (``2.5.4.5=``
# for nginx's ``serialNumber=``, ``1.2.840.113549.1.9.1=`` for ``emailAddress=``), keeps a
# multi-valued RDN in its own order, and cannot read a TeletexString that is not UTF-8.


def _der_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag byte, content start, content end)`` of the DER element at ``pos``."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    if pos + n > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + n


def _issuer_subject(cert_der: bytes) -> tuple[bytes, bytes]:
    """The DER contents of a certificate's issuer and subject Names (RFC 5280 §4.1:
    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    signature, issuer, validity, subject, ... } ... })."""
    _t, start, _e = _der_tlv(cert_der, 0)
    _t, pos, _e = _der_tlv(cert_der, start)   # tbsCertificate
    tag, _s, end = _der_tlv(cert_der, pos)
    if tag == 0xA0:   # [0] version
        pos = end
    fields: list[bytes] = []
    for _ in range(5):   # serialNumber, signature, issuer, validity, subject
        _t, s, end = _der_tlv(cert_der, pos)
        fields.append(cert_der[s:end])
        pos = end
    return fields[2], fields[4]


def _oid_text(body: bytes) -> str:
    """An OBJECT IDENTIFIER's content octets, dotted."""
    arcs: list[int] = []
    n = 0
    for b in body:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
    if not arcs:
        return ""
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


#: OpenSSL's short names of some attribute types, for a Python without ``ssl._txt2obj``.
_SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "street", "2.5.4.5": "serialNumber", "2.5.4.4": "SN",
    "2.5.4.42": "GN", "2.5.4.12": "title", "2.5.4.17": "postalCode",
    "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
    "1.2.840.113549.1.9.1": "emailAddress",
}


@functools.lru_cache(maxsize=256)
def _short_name(oid: str) -> str | None:
    """OpenSSL's short name of an attribute type (``OBJ_nid2sn``), None when OpenSSL does not
    know the OID (``NID_undef``: printed dotted, its value dumped)."""
    txt2obj: Any = getattr(ssl, "_txt2obj", None)
    if txt2obj is None:
        return _SHORT_NAMES.get(oid)
    try:
        return str(txt2obj(oid, name=False)[1])
    except (ValueError, TypeError):
        return None


#: ``tag2nbyte`` of a_strex.c: the bytes per character of each universal string type; the
#: others (absent) are dumped (ASN1_STRFLGS_DUMP_UNKNOWN). 0: UTF8String, read byte by byte.
_CHAR_WIDTH = {12: 0, 18: 1, 19: 1, 20: 1, 22: 1, 23: 1, 24: 1, 26: 1, 28: 4, 30: 2}
_ESC_2253 = frozenset(b',+"\\<>;')


def _utf8_putc(c: int) -> bytes:
    """OpenSSL's ``UTF8_putc`` (surrogates and code points past U+10FFFF encoded too)."""
    if c < 0x80:
        return bytes((c,))
    if c < 0x800:
        return bytes((0xC0 | c >> 6, 0x80 | c & 0x3F))
    if c < 0x10000:
        return bytes((0xE0 | c >> 12, 0x80 | c >> 6 & 0x3F, 0x80 | c & 0x3F))
    if c < 0x200000:
        return bytes((0xF0 | c >> 18, 0x80 | c >> 12 & 0x3F, 0x80 | c >> 6 & 0x3F,
                      0x80 | c & 0x3F))
    if c < 0x4000000:
        return bytes((0xF8 | c >> 24, 0x80 | c >> 18 & 0x3F, 0x80 | c >> 12 & 0x3F,
                      0x80 | c >> 6 & 0x3F, 0x80 | c & 0x3F))
    return bytes((0xFC | c >> 30 & 0x1, 0x80 | c >> 24 & 0x3F, 0x80 | c >> 18 & 0x3F,
                  0x80 | c >> 12 & 0x3F, 0x80 | c >> 6 & 0x3F, 0x80 | c & 0x3F))


def _esc_value(tag: int, body: bytes, tlv: bytes) -> str:
    """An attribute value as ``do_print_ex`` prints it with ASN1_STRFLGS_RFC2253: ``,+"\\<>;``
    backslashed, ``#`` first and a space first or last backslashed, control characters and
    every byte of a non-ASCII character (in UTF-8) as ``\\XX``; a type that is no string
    (or a string whose length does not fit its width) as ``#`` and its DER in hex."""
    width = _CHAR_WIDTH.get(tag, -1) if not tag & 0xE0 else -1
    if width in (2, 4) and len(body) % width:
        width = -1   # (OpenSSL fails the whole name there; nginx then has no DN)
    if width == -1:
        return "#" + tlv.hex().upper()
    if width == 0:
        units: list[bytes] = [bytes((b,)) for b in body]
    else:
        units = [_utf8_putc(int.from_bytes(body[i:i + width], "big"))
                 for i in range(0, len(body), width)]
    out: list[str] = []
    last_i = len(units) - 1
    for i, unit in enumerate(units):
        if len(unit) > 1 or unit[0] > 0x7F:
            out.append("".join(f"\\{b:02X}" for b in unit))
            continue
        c = unit[0]
        # do_buf: the first unit's flag is replaced (not joined) by the last's: a value
        # that is "#" alone is not escaped, " " alone is.
        first, last = i == 0 and i != last_i, i == last_i
        if c in _ESC_2253 or (c == 0x20 and (first or last)) or (c == 0x23 and first):
            out.append("\\" + chr(c))
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\{c:02X}")
        else:
            out.append(chr(c))
    return "".join(out)


def rfc2253(name_der: bytes) -> str:
    """A Name's DER contents (the RDN SETs) as nginx's ``$ssl_client_s_dn`` prints it
    (``X509_NAME_print_ex(..., XN_FLAG_RFC2253)``): the attributes last first, ``,`` between
    RDNs and ``+`` within one, OpenSSL's short names (``CN``, ``emailAddress``,
    ``serialNumber``), an OID OpenSSL does not know dotted with its value dumped (``#`` and
    the DER in hex). Only printable ASCII comes out.

    >>> rfc2253(bytes.fromhex("310b3009060355040613024445"
    ...                       "3110300e06035504030c07c3a92c2023782b"))
    'CN=\\\\C3\\\\A9\\\\, #x\\\\+,C=DE'
    """
    entries: list[tuple[int, str]] = []
    pos = 0
    for rdn_index in range(len(name_der) + 1):
        if pos >= len(name_der):
            break
        _t, s, end = _der_tlv(name_der, pos)   # SET
        pos = end
        while s < end:
            _t, a, a_end = _der_tlv(name_der, s)   # SEQUENCE { type, value }
            s = a_end
            _t, o, o_end = _der_tlv(name_der, a)
            oid = _oid_text(name_der[o:o_end])
            tag, v, v_end = _der_tlv(name_der, o_end)
            tlv = name_der[o_end:v_end]
            short = _short_name(oid)
            if short is None:
                text = f"{oid}=#{tlv.hex().upper()}"
            else:
                text = f"{short}={_esc_value(tag, name_der[v:v_end], tlv)}"
            entries.append((rdn_index, text))
    parts: list[str] = []
    prev = -1
    for rdn_index, text in reversed(entries):
        if prev != -1:
            parts.append("+" if rdn_index == prev else ",")
        parts.append(text)
        prev = rdn_index
    return "".join(parts)


#: A Secret's name (``metadata.name``): an RFC 1123 subdomain, as the API server validates it.
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII)
#: A namespace: an RFC 1123 label.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)


def parse_secret_ref(text: str) -> tuple[str, str]:
    """``"namespace/name"`` -> ``(namespace, name)``; ValueError otherwise. ingress-nginx takes
    ``--default-ssl-certificate`` in this form only (``ParseNameNS``: "invalid format
    (namespace/name)"); the names are checked as the API server checks them, since a Secret
    by any other name cannot exist."""
    ns, sep, name = text.partition("/")
    if not sep or "/" in name:
        raise ValueError(f"{text!r}: expected NAMESPACE/NAME")
    if not _DNS1123_LABEL.fullmatch(ns):
        raise ValueError(f"{text!r}: the namespace {ns!r} is not a lower-case RFC 1123 label "
                         "(a-z, 0-9, '-', at most 63 characters)")
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise ValueError(f"{text!r}: the Secret name {name!r} is not a lower-case RFC 1123 "
                         "subdomain (a-z, 0-9, '-', '.', at most 253 characters)")
    return ns, name


@dataclass(frozen=True, slots=True)
class _Cert:
    """A loaded Secret: its context, the names it covers, its validity window."""

    ctx: ssl.SSLContext
    names: frozenset[str]
    not_before: datetime.datetime
    not_after: datetime.datetime
    #: ``(tls.crt, tls.key)``: a host with client certificate authentication is served the
    #: certificate from a context of its own (:func:`_auth_context`).
    pem: tuple[bytes, bytes] = (b"", b"")


def _leaf_first(crt: bytes) -> None:
    """Refuse a tls.crt whose first PEM block (as Go's ``pem.Decode`` finds it) is not a
    ``CERTIFICATE`` one, as ingress-nginx does (ssl.go ``CreateSSLCert``: "if pemBlock.Type !=
    "CERTIFICATE" { return nil, fmt.Errorf("no certificate PEM data found, make sure
    certificate content starts with 'BEGIN CERTIFICATE'") }"): a "key + certificate" bundle,
    an ``X509 CERTIFICATE`` or ``EC PARAMETERS`` block first. OpenSSL would skip to the first
    certificate and serve it. A tls.crt without a readable block is said otherwise
    (:func:`_unusable`)."""
    first = next(_pem_blocks(crt), None)
    if first is not None and first[0] != b"CERTIFICATE" and _CERT_BEGIN.search(crt):
        # repr: the type is the Secret writer's text (no control character reaches a log).
        kind = first[0].decode("ascii", "replace")
        raise _NotCertificateFirst(
            f"tls.crt starts with a PEM block of type {kind!r}: its first block must be the "
            "certificate ('-----BEGIN CERTIFICATE-----'), as ingress-nginx requires ('no "
            "certificate PEM data found, make sure certificate content starts with 'BEGIN "
            "CERTIFICATE'')")


def _load(crt: bytes, key: bytes, tls: TLSSettings = DEFAULT_TLS) -> _Cert:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    _leaf_first(crt)
    # (The two-argument call for the defaults: what `check`'s expiry metric and its tests
    # count, tests/test_tls_kube_s17.py.)
    ctx = _new_context(crt, key) if tls is DEFAULT_TLS else _new_context(crt, key, tls=tls)
    # The first PEM block is the leaf: load_cert_chain just paired it with the key.
    leaf = x509.load_pem_x509_certificate(crt)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        # ingress-nginx's fallback ("Validating certificate against DNS names. This will be
        # deprecated"): the Common Name, when the certificate has no DNS SAN.
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return _Cert(ctx, frozenset(_norm(n) for n in names),
                 leaf.not_valid_before_utc, leaf.not_valid_after_utc, (crt, key))


def _names_text(names: frozenset[str]) -> str:
    """The names a certificate covers, for a message (an IP-only SAN names none)."""
    if not names:
        return "it names no DNS name: no DNS SAN and no Common Name"
    return "it names " + ", ".join(sorted(names))


def _note_no_secret_name(
    ordered: list[Ingress], rule_hosts: list[set[str]], chosen: Mapping[str, _Cert],
    tenancy: _Tenancy,
) -> None:
    """Say, at INFO level, which hosts a ``spec.tls`` entry without ``secretName`` leaves on the
    default certificate. Such an entry is valid (``secretName`` is optional in the Ingress API)
    and not a problem: ingress-nginx serves its hosts the default certificate, with
    ssl-redirect and HSTS as for any TLS host (controller.go ``createServers``: "Host %q is
    listed in the TLS section but secretName is empty. Using default certificate", an Info at
    V(3); the default certificate's UID makes ``certificate.lua``'s
    ``configured_for_current_request`` true, which ``lua_ingress.lua``'s ``redirect_to_https``
    asks). Hosts that another entry gives a certificate are not named."""
    for n, ing in enumerate(ordered):
        for i, tls in enumerate(ing.spec.tls):
            if tls.secret_name:
                continue
            # Listings refused to this namespace (``_Tenancy``) give it no host at all.
            hosts = {_norm(h) for j, h in enumerate(tls.hosts)
                     if (n, i, j) not in tenancy.refused} if tls.hosts else rule_hosts[n]
            left = sorted(h for h in hosts if h not in chosen)
            if left:
                # (No "tls: " prefix: the logger's name says it, "INFO ingresslib.tls: ...".)
                _log.info("Ingress %s: spec.tls[%d] has no secretName: the default "
                          "certificate for %s, as in ingress-nginx", ing.metadata.ref, i,
                          ", ".join(left))


#: The Ingress annotations that make cert-manager's ingress-shim create the Certificate, and so
#: the ``secretName`` Secret (cert-manager.io/docs/usage/ingress, "Supported Annotations";
#: "secretName: myingress-cert # < cert-manager will store the created certificate in this
#: secret"), as cert-manager reads them (pkg/controller/certificate-shim/sync.go
#: ``hasShimAnnotation``, ``issuerForIngressLike``, ``validateIngressLike``).
_CM_ISSUER = "cert-manager.io/issuer"
_CM_CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"
#: Set with ``cert-manager.io/cluster-issuer``, each is a "may not be set" error.
_CM_NOT_WITH_CLUSTER_ISSUER = ("cert-manager.io/issuer-kind", "cert-manager.io/issuer-group")
_TLS_ACME = "kubernetes.io/tls-acme"
#: Go's ``strconv.ParseBool`` true values: ``tls-acme`` counts as any of them (with a default
#: issuer set: ``--default-issuer-name``).
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def _cert_manager_note(ing: Ingress, tls: IngressTLS) -> str:
    """For a missing Secret: that cert-manager is asked to create it, when the Ingress says so.
    Manifests checked before they are applied (``ingresslib check``) hold no such Secret: a bare
    "not found" reads as a Secret to add to them, where it is only not issued yet.

    Only where cert-manager does create it: an issuer annotation counts when present, its
    value naming the issuer (an empty name, or both ``issuer`` and ``cluster-issuer``, or
    ``cluster-issuer`` with ``issuer-kind``/``issuer-group``, is an event "Could not determine
    issuer for ingress due to bad annotations", and no Certificate); ``tls-acme`` as Go's
    ``ParseBool`` reads it; an Ingress with two TLS entries naming one Secret gets no
    Certificate ("this secret name must only appear in a single TLS entry"), and a TLS entry
    without hosts none for its Secret ("Skipped a TLS block")."""
    anns = ing.metadata.annotations
    acme = anns.get(_TLS_ACME) in _GO_TRUE
    if _CM_CLUSTER_ISSUER in anns:
        if _CM_ISSUER in anns or any(a in anns for a in _CM_NOT_WITH_CLUSTER_ISSUER):
            return ""
        asks, issuer = _CM_CLUSTER_ISSUER, anns[_CM_CLUSTER_ISSUER]
    elif _CM_ISSUER in anns:
        asks, issuer = _CM_ISSUER, anns[_CM_ISSUER]
    elif acme:
        asks, issuer = _TLS_ACME, anns[_TLS_ACME]
    else:
        return ""
    if not issuer or not tls.hosts:
        return ""
    names = [t.secret_name for t in ing.spec.tls]
    if len(names) != len(set(names)):
        return ""
    return (f": cert-manager creates it once it has issued the certificate this Ingress asks "
            f"for ({asks}: {issuer}); until then its hosts get the default certificate")


def _pem_digest(crt: bytes, key: bytes, ca: bytes | None, crl: bytes | None) -> bytes:
    """What a loaded certificate is cached under: its PEM, and the ``ca.crt`` and ``ca.crl``
    beside it (:func:`_ca_problem` is checked on a load only)."""
    extra = b"" if not ca else b"\0" + ca + (b"\0" + crl if crl else b"")
    return hashlib.sha256(crt + b"\0" + key + extra).digest()


@dataclass(frozen=True, slots=True)
class _Loaded:
    """The certificates one decision loaded: by a digest of their PEM (a reload that keeps a
    certificate reuses it), and the last one each Secret (namespace, name) loaded (a broken
    update of the Secret keeps it: :meth:`_Loader.entry`)."""

    cache: Mapping[bytes, _Cert]
    last_good: Mapping[tuple[str, str], _Cert]


class _Loader:
    """Loads the Secrets the ``spec.tls`` entries name, for one decision (:func:`_select`),
    reusing what the last one loaded (``before``) and reporting into ``problems``."""

    def __init__(self, secrets: Mapping[tuple[str, str], Secret], before: _Loaded,
                 problems: list[TLSProblem], tls: TLSSettings = DEFAULT_TLS) -> None:
        self._tls = tls
        self._secrets = secrets
        self._before = before
        self._problems = problems
        self._now = datetime.datetime.now(datetime.timezone.utc)
        self.cache: dict[bytes, _Cert] = {}
        self.last_good: dict[tuple[str, str], _Cert] = {}

    def entry(self, ing: Ingress, i: int) -> _Cert | None:
        """The certificate of ``ing.spec.tls[i]``'s Secret, or None (reported, unless the
        entry has no ``secretName``)."""
        secrets, problems, now = self._secrets, self._problems, self._now
        cache, last_good = self.cache, self.last_good
        obj, field = f"Ingress {ing.metadata.ref}", f"spec.tls[{i}].secretName"

        def broken(ref: tuple[str, str], message: str) -> _Cert | None:
            # A Secret that loaded before and is now broken keeps its last good certificate, as
            # in ingress-nginx (backend_ssl.go syncSecret: "cert, err := s.getPemCertificate(key)
            # if err != nil { klog.Warningf("Error obtaining X.509 certificate: %v", err)
            # return }" leaves the local store as it was), and as SEMANTICS §11 keeps the last
            # good table. A deleted Secret does not (its "not found" never comes here).
            prev = self._before.last_good.get(ref)
            if prev is None:
                problems.append(TLSProblem(obj, field, message))
                return None
            last_good[ref] = prev
            problems.append(TLSProblem(
                obj, field, f"{message}; still serving its last good certificate", warning=True))
            return prev

        tls = ing.spec.tls[i]
        if not tls.secret_name:
            return None   # valid: the default certificate (update() says so, as a note)
        secret = secrets.get((ing.metadata.namespace, tls.secret_name))
        if secret is None:
            problems.append(TLSProblem(
                obj, field, f"Secret {ing.metadata.namespace}/{tls.secret_name} not found"
                + _cert_manager_note(ing, tls)))
            return None
        ref = (secret.metadata.namespace, secret.metadata.name)
        crt, key = secret.get_bytes("tls.crt"), secret.get_bytes("tls.key")
        if not crt or not key:
            # Name the key at fault and why: "has no tls.crt" misleads when the key is there
            # but its value is not base64 (PEM text put under `data` instead of `stringData`).
            faults = []
            for k, v in (("tls.crt", crt), ("tls.key", key)):
                if v:
                    continue
                if k not in secret.string_data and secret.data.get(k):
                    faults.append(f"{k} is not valid base64 (PEM text belongs in stringData)")
                elif k in secret.data or k in secret.string_data:
                    faults.append(f"{k} is empty")
                else:
                    faults.append(f"no {k} key")
            return broken(ref, f"Secret {secret.metadata.ref} has no tls.crt/tls.key "
                          f"(type {secret.type}): {'; '.join(faults)}")
        ca = secret.get_bytes("ca.crt")
        crl = secret.get_bytes("ca.crl") if ca else None
        digest = _pem_digest(crt, key, ca, crl)
        cert = cache.get(digest) or self._before.cache.get(digest)
        if cert is None:
            try:
                cert = _load(crt, key, self._tls)
            except Exception as e:  # noqa: BLE001 -- one bad Secret must not stop the others
                # The messages (OpenSSL's, cryptography's, ours) name the problem, never the PEM.
                why = _unusable(e, crt, key)
                return broken(ref, f"Secret {secret.metadata.ref}: unusable certificate: {why}")
            # Only on a load: ``ca.crt`` and ``ca.crl`` are part of the digest, so a cached
            # certificate's were checked when it loaded.
            ca_why = _ca_refusal(secret.metadata.ref, ca, crl)
            if ca_why is not None:
                return broken(ref, ca_why)
        cache[digest] = cert
        last_good[ref] = cert
        problems.extend(_date_problems(obj, field, secret.metadata.ref, cert, now))
        return cert


@dataclass(frozen=True, slots=True)
class _Selection:
    """What :func:`_select` decides."""

    #: Host (normalised; ``*.suffix`` for a wildcard) -> (its certificate, the Secret
    #: (namespace, name) it comes from).
    chosen: Mapping[str, tuple[_Cert, tuple[str, str]]]
    #: Exact hosts served the default certificate so that the lookup does not fall back to a
    #: wildcard that does not stand for them (``_Tenancy.outside``).
    kept: frozenset[str]
    tls_hosts: TLSHosts
    problems: list[TLSProblem]
    #: What this decision loaded, for the next one.
    loaded: _Loaded


def _aliases_of(ordered: list[Ingress]) -> dict[str, tuple[str | None, Ingress]]:
    """The ``server-alias`` names of the non-canary Ingresses ``ordered`` (oldest first), as
    the route table keeps them (``_table.server_aliases``)."""
    if not any(SERVER_ALIAS in ing.metadata.annotations for ing in ordered):
        return {}
    hosts = dict.fromkeys(rule.host or None for ing in ordered for rule in ing.spec.rules)
    return server_aliases(ordered, hosts)[0]


def _select(res: Resources, ingresses: Iterable[Ingress] | None, before: _Loaded,
            *, note: bool = False, tls_settings: TLSSettings = DEFAULT_TLS) -> _Selection:
    """The decision :meth:`CertificateStore.update` documents (which certificate each host
    gets, the TLS hosts, the problems), without building the store's maps: one source for the
    store, ``ingresslib check`` (:func:`certificate_problems`) and the certificate-expiry
    metric (:func:`served_certificates`). ``before``: the certificates loaded by the last
    decision of the same caller (reused by PEM digest; a broken Secret keeps its last good
    one). ``note``: log the INFO note of entries without ``secretName`` (the store's)."""
    secrets: dict[tuple[str, str], Secret] = {
        (s.metadata.namespace, s.metadata.name): s for s in res.secrets
    }
    problems: list[TLSProblem] = []
    loader = _Loader(secrets, before, problems, tls_settings)
    # Oldest first, canaries apart (they supply no certificate): ``_main_ingresses``,
    # shared with ``tls_hosts``.
    ordered, canaries = _main_ingresses(res, ingresses)
    # Every entry is loaded once, up front, so each Secret problem is reported even when the
    # host is served from elsewhere.
    loaded: dict[tuple[int, int], _Cert] = {}
    for n, ing in enumerate(ordered):
        for i, tls in enumerate(ing.spec.tls):
            got = loader.entry(ing, i)
            if got is not None:
                loaded[n, i] = got

    chosen: dict[str, _Cert] = {}
    # Where each chosen certificate comes from: the Secret (namespace, name).
    origin: dict[str, tuple[str, str]] = {}

    def offer(host: str, at: tuple[int, int]) -> None:
        if host not in chosen:
            chosen[host] = loaded[at]
            ing = ordered[at[0]]
            origin[host] = (ing.metadata.namespace, ing.spec.tls[at[1]].secret_name or "")

    def check_listed(n: int, ing: Ingress, in_rules: bool) -> None:
        for i, tls in enumerate(ing.spec.tls):
            cert = loaded.get((n, i))
            for j, raw in enumerate(tls.hosts):
                host = _norm(raw)
                if (host in rule_hosts[n]) != in_rules or cert is None:
                    continue
                if (n, i, j) in tenancy.refused:
                    continue   # another namespace routes the host (reported below)
                if _covers(cert.names, host):
                    offer(host, (n, i))
                elif in_rules or host not in chosen:
                    problems.append(TLSProblem(
                        f"Ingress {ing.metadata.ref}", f"spec.tls[{i}].hosts[{j}]",
                        f"certificate of Secret {ing.metadata.namespace}/{tls.secret_name} "
                        f"does not cover {host!r} ({_names_text(cert.names)}); "
                        "using the default certificate"))

    rule_hosts = _rule_hosts(ordered)
    tenancy = _tenancy(ordered, rule_hosts)
    for n, ing in enumerate(ordered):
        check_listed(n, ing, True)
        for host in sorted(rule_hosts[n]):
            if host in chosen:
                continue
            for i in range(len(ing.spec.tls)):
                cert = loaded.get((n, i))
                if cert is not None and _covers(cert.names, host):
                    offer(host, (n, i))
                    break
    # A from-to-www-redirect twin gets its host's certificate when it covers the twin, as
    # in ingress-nginx (``_www_twins``); before the ``tls.hosts`` extension, which ranks
    # last. A host left on the default certificate gives its twin none (ingress-nginx:
    # the default certificate covers no twin).
    uncovered: list[tuple[str, str, Ingress, _Cert]] = []
    for twin, (to, ing) in tenancy.twins.items():
        cert = chosen.get(to)
        if cert is None:
            continue
        if _covers(cert.names, twin):
            chosen.setdefault(twin, cert)
            origin.setdefault(twin, origin[to])
        else:
            uncovered.append((twin, to, ing, cert))
    # A server-alias gets its server's certificate when it covers the alias, as in
    # ingress-nginx (nginx.go ``configureCertificates``: "if rawServer.SSLCert != nil &&
    # ssl.IsValidHostname(alias, rawServer.SSLCert.CN) { configuration.Servers[alias] =
    # rawServer.SSLCert.UID } else { ... emptyUID }"); else nothing of its own.
    for alias, (server, _ing) in _aliases_of(ordered).items():
        alias_cert = chosen.get(server) if server is not None else None
        if alias_cert is not None and server is not None and _covers(alias_cert.names, alias):
            chosen.setdefault(alias, alias_cert)
            origin.setdefault(alias, origin[server])
    for n, ing in enumerate(ordered):
        check_listed(n, ing, False)
    # A host whose namespace lists the wildcard over it, as another namespace does: the
    # suffix's certificate is the oldest listing's; another namespace's does not stand for the
    # host (``_Tenancy``), its own namespace's does: served exactly, else the default one.
    kept: set[str] = set()
    for host, own in sorted(tenancy.shared.items()):
        wild_host = "*" + host[host.find("."):]
        if host in chosen or wild_host not in chosen:
            continue
        ns = ordered[own[0][0]].metadata.namespace
        if origin[wild_host][0] == ns:
            continue
        for n, i, _j in own:
            cert = loaded.get((n, i))
            if cert is not None and _covers(cert.names, host):
                offer(host, (n, i))
                break
        else:
            kept.add(host)
            # Said when the namespace's Secret loaded but does not cover the host (a missing
            # or broken one is said already): check_listed said nothing, the suffix having
            # another namespace's certificate.
            for n, i, j in own:
                cert = loaded.get((n, i))
                if cert is not None:
                    ing = ordered[n]
                    problems.append(TLSProblem(
                        f"Ingress {ing.metadata.ref}", f"spec.tls[{i}].hosts[{j}]",
                        f"certificate of Secret {ns}/{ing.spec.tls[i].secret_name} does not "
                        f"cover {host!r} ({_names_text(cert.names)}); using the default "
                        "certificate"))
    tls_set = _configured(ordered, rule_hosts, tenancy)
    # A refused listing is said when it would have made the host a TLS host: for a host
    # its owner serves over HTTPS anyway, it changes nothing (as before: the rule wins).
    problems.extend(p for (n, i, j), p in tenancy.refused.items()
                    if not tls_set(ordered[n].spec.tls[i].hosts[j]))
    # A host another namespace routes, under a wildcard only ``tls.hosts`` listings of
    # other namespaces supply, is not served their certificate (``_Tenancy``): its own
    # certificate, else the default one, never the wildcard's.
    for host in sorted(tenancy.outside):
        by, listings = tenancy.outside[host]
        if host not in chosen:
            kept.add(host)
        if tls_set(host):
            continue   # a TLS host of its own: the listings change nothing for it
        for n, i, j in listings:
            ing = ordered[n]
            problems.append(TLSProblem(
                f"Ingress {ing.metadata.ref}", f"spec.tls[{i}].hosts[{j}]",
                f"{_norm(ing.spec.tls[i].hosts[j])!r} does not stand for {host!r}: it is "
                f"routed by {_routed_by(tenancy.twins, host, by)} and no rule of this "
                "Ingress names it; a tls.hosts name without a rule applies only to hosts no "
                "other namespace routes: no certificate from this entry, no ssl-redirect or "
                "HSTS for that host", warning=True))
    for twin, to, ing, cert in uncovered:
        # Under a ``*.`` another namespace only lists, the twin is kept on the default
        # certificate (``_Tenancy.outside``): that wildcard does not serve it.
        if _chosen_for(chosen, kept, twin) is not None:
            continue   # served a certificate of its own after all
        # ingress-nginx: "the server %v has SSL configured but the SSL certificate does
        # not contains a CN for %v. Redirects will not work for HTTPS to HTTPS".
        problems.append(TLSProblem(
            f"Ingress {ing.metadata.ref}", f"metadata.annotations[{FROM_TO_WWW}]",
            f"the certificate of {to!r} does not cover its twin {twin!r} "
            f"({_names_text(cert.names)}): https://{twin}/ gets the default certificate, "
            "so its redirect fails certificate checks", warning=True))
    problems.extend(_unlisted_uncovered(ordered, rule_hosts, loaded, chosen, kept))

    # Said, so that a canary naming a certificate of its own is not ignored silently; a
    # canary repeating its main Ingress's Secret (a copied manifest) changes nothing.
    named = {(ing.metadata.namespace, t.secret_name) for ing in ordered for t in ing.spec.tls}
    for ing in canaries:
        for i, tls in enumerate(ing.spec.tls):
            if tls.secret_name and (ing.metadata.namespace, tls.secret_name) not in named:
                problems.append(TLSProblem(
                    f"Ingress {ing.metadata.ref}", f"spec.tls[{i}].secretName",
                    f"ignored: a canary Ingress ({CANARY_ANNOTATION}) supplies no "
                    "certificate; its hosts take theirs from the non-canary Ingresses, as "
                    "in ingress-nginx", warning=True))

    if note:
        _note_no_secret_name(ordered, rule_hosts, chosen, tenancy)
    return _Selection(
        {h: (cert, origin[h]) for h, cert in chosen.items()}, frozenset(kept), tls_set,
        problems, _Loaded(loader.cache, loader.last_good))


def _chosen_for(chosen: Mapping[str, _V], kept: Collection[str], host: str) -> _V | None:
    """What ``chosen`` serves ``host`` (normalised): its own name's, else, unless the host is
    ``kept`` on the default certificate, the ``*.`` name one label up (the lookup of
    :meth:`CertificateStore.context_for`); None: the default certificate."""
    hit = chosen.get(host)
    dot = host.find(".")
    if hit is None and host not in kept and dot > 0:
        hit = chosen.get("*" + host[dot:])
    return hit


def _unlisted_uncovered(ordered: list[Ingress], rule_hosts: list[set[str]],
                        loaded: Mapping[tuple[int, int], _Cert], chosen: Mapping[str, _Cert],
                        kept: set[str]) -> list[TLSProblem]:
    """The rule hosts of an Ingress with ``tls`` that no entry of it lists and none of its
    certificates covers, left on the default certificate: said, as a listed host its
    certificate does not cover is said. ingress-nginx serves such a host its default
    certificate and redirects it to HTTPS (``extractTLSSecretName`` finds no listing and no
    certificate whose SAN covers the host and returns "", so ``createServers`` sets
    ``getDefaultSSLCertificate()``), and only logs it at ``-v 3`` ("Host %q is listed in the
    TLS section but secretName is empty. Using default certificate"): the usual case is an
    entry without ``hosts`` (``tls: [{secretName: ...}]``) whose certificate does not name
    the host, which otherwise went unreported. Not said when the host is served a Secret's
    certificate anyway (another Ingress's, or a ``*.`` one the lookup falls back to), when an
    entry without ``secretName`` and without ``hosts`` gives it the default certificate on
    purpose (an INFO note says that), or when one of the Ingress's Secrets could not be
    loaded (that is said already, and may be the one meant to cover it)."""
    out: list[TLSProblem] = []
    for n, ing in enumerate(ordered):
        tls = ing.spec.tls
        if not tls or any(not t.secret_name and not t.hosts for t in tls):
            continue
        if any(t.secret_name and (n, i) not in loaded for i, t in enumerate(tls)):
            continue
        listed = {_norm(h) for t in tls for h in t.hosts}
        for host in sorted(rule_hosts[n] - listed):
            dot = host.find(".")
            if _chosen_for(chosen, kept, host) is not None or (
                    dot > 0 and "*" + host[dot:] in listed):
                # Served a Secret's certificate, or under a ``*.`` name this Ingress lists
                # (whose own problem, if any, is said for that listing).
                continue
            rule = next(r for r, rl in enumerate(ing.spec.rules)
                        if rl.host and _norm(rl.host) == host)
            certs = "; ".join(
                f"Secret {ing.metadata.namespace}/{t.secret_name}: "
                f"{_names_text(loaded[n, i].names)}"
                for i, t in enumerate(tls) if t.secret_name) or "its entries name no Secret"
            out.append(TLSProblem(
                f"Ingress {ing.metadata.ref}", f"spec.rules[{rule}].host",
                f"no spec.tls entry of this Ingress lists {host!r} and none of its "
                f"certificates covers it ({certs}); using the default certificate, with "
                "ssl-redirect to HTTPS as for every rule host of an Ingress with tls (as in "
                "ingress-nginx)"))
    return out


def certificate_problems(res: Resources, ingresses: Iterable[Ingress] | None = None
                         ) -> list[TLSProblem]:
    """The problems :meth:`CertificateStore.update` (same arguments) reports, as a fresh store
    finds them, without a store: no default certificate is generated. What ``ingresslib check``
    prints."""
    return _select(res, ingresses, _Loaded({}, {})).problems


def dh_param_problems(res: Resources, settings: Any) -> list[TLSProblem]:
    """What :meth:`CertificateStore.update` reports of the ``ssl-dh-param`` of ``settings``
    (a ``ProxySettings``; None: none) with ``res``'s Secrets: a missing Secret or key, a
    first PEM block other than ``DH PARAMETERS``, parameters OpenSSL refuses. What
    ``ingresslib check --config`` prints."""
    ref = getattr(settings, "ssl_dh_param", "") if settings is not None else ""
    return _dh_params(res, ref)[1] if ref else []


def _first_maps(sel: _Selection) -> tuple[dict[str, None], dict[str, None]]:
    """The names of the store's maps as its update first fills them from ``sel`` (exact: the
    hosts kept on the default certificate and those with one; ``".suffix"`` of the ``*.``
    ones), for the decisions taken without a store."""
    exact = dict.fromkeys([*sel.kept, *(h for h in sel.chosen if not h.startswith("*."))])
    wild = dict.fromkeys(h[1:] for h in sel.chosen if h.startswith("*."))
    return exact, wild


def certificate_for_name(res: Resources, ingresses: Iterable[Ingress] | None, server_name: str,
                         default_names: frozenset[str] = frozenset()
                         ) -> tuple[str, datetime.datetime, datetime.datetime] | None:
    """``("namespace/secret", not_before, not_after)`` of the Secret certificate a fresh
    :class:`CertificateStore` updated with ``res`` and ``ingresses`` answers a ClientHello
    naming ``server_name`` with; None: the default certificate. The store's own decision
    (:func:`_select`: the hosts it ``kept`` on the default certificate do not fall back to a
    wildcard) and lookup (:meth:`CertificateStore.context_for`: an exact name, else a ``*.``
    one label up). ``default_names``: the names the default Secret's certificate covers
    (``default_secret``, :func:`default_certificate`). What ``ingresslib explain`` says of an
    ``https://`` URL."""
    sel = _select(res, ingresses, _Loaded({}, {}))
    name = _norm(server_name)
    hit = _chosen_for(sel.chosen, sel.kept, name)
    if hit is None:
        return None
    if default_names and _covers(default_names, name):
        # A server-alias of a rule without host under a ``*.`` name gets the default
        # certificate when it covers the alias, as the store's update gives it (nginx.go
        # ``configureCertificates``), else the wildcard's.
        exact, wild = _first_maps(sel)
        if name in _default_aliases(_main_ingresses(res, ingresses)[0], exact, wild):
            return None
    cert, (ns, secret) = hit
    return f"{ns}/{secret}", cert.not_before, cert.not_after


def _read_default(res: Resources, ref: tuple[str, str], tls: TLSSettings,
                  loaded: tuple[bytes, _Cert, str] | None = None
                  ) -> tuple[Secret | None, bytes, _Cert | None, str | None]:
    """The default Secret ``ref`` of ``res`` as the store reads it (ingress-nginx's
    ``getDefaultSSLCertificate``: "read custom default SSL certificate, fall back to generated
    default certificate"): ``(secret, PEM digest, certificate, why it cannot serve)``; the
    secret None when missing. ``loaded``'s certificate when its digest is unchanged (its
    context kept). Shared by :meth:`CertificateStore._update_default` and
    :func:`default_certificate`."""
    ns, name = ref
    secret = next((s for s in res.secrets
                   if s.metadata.namespace == ns and s.metadata.name == name), None)
    if secret is None:
        return None, b"", None, "Secret not found"
    crt, key = secret.get_bytes("tls.crt"), secret.get_bytes("tls.key")
    if not crt or not key:
        # (The problem names the Secret already: no "Secret ns/name: Secret ns/name: ...".)
        return secret, b"", None, "no usable tls.crt/tls.key"
    ca = secret.get_bytes("ca.crt")
    crl = secret.get_bytes("ca.crl") if ca else None
    digest = _pem_digest(crt, key, ca, crl)
    if loaded is not None and loaded[0] == digest:
        return secret, digest, loaded[1], None
    try:
        # A context of its own even when an Ingress names the same Secret: the default is
        # told apart by identity (``hosts``, ``ProxyServer._has_tls``).
        cert = _load(crt, key, tls)
    except Exception as e:  # noqa: BLE001 -- reported; the default stays usable
        return secret, digest, None, f"unusable certificate: {_unusable(e, crt, key)}"
    # ingress-nginx loads its default Secret as any other (``getPemCertificate``).
    return secret, digest, cert, _ca_refusal(None, ca, crl)


def default_certificate(res: Resources, default_secret: str
                        ) -> tuple[str, datetime.datetime, datetime.datetime, frozenset[str]] \
        | str:
    """``("namespace/name", not_before, not_after, names)`` of the certificate a fresh
    :class:`CertificateStore` with ``default_secret`` serves as its default one once updated
    with ``res``; else why it serves the generated one instead (``"Secret not found"``, ...):
    the store's own reading (:func:`_read_default`). What ``ingresslib explain
    --default-ssl-certificate`` says of an ``https://`` URL no Secret of an Ingress answers."""
    secret, _digest, cert, why = _read_default(res, parse_secret_ref(default_secret),
                                               DEFAULT_TLS)
    if why is not None or secret is None or cert is None:
        return why or "Secret not found"
    return secret.metadata.ref, cert.not_before, cert.not_after, cert.names


def handshake_refused(res: Resources, ingresses: Iterable[Ingress] | None,
                      server_name: str | None) -> bool:
    """Whether a fresh :class:`CertificateStore` with ``ssl-reject-handshake`` on, updated with
    ``res`` and ``ingresses``, refuses a ClientHello naming ``server_name`` (None: no SNI):
    nginx's ``ssl_reject_handshake`` in the default server answers a name no server has. The
    store's own decision (``_known_name``) on the names its update gives it
    (``_server_names``, ``_default_aliases``). What ``ingresslib explain`` says of an
    ``https://`` URL under that ConfigMap key."""
    sel = _select(res, ingresses, _Loaded({}, {}))
    ordered = _main_ingresses(res, ingresses)[0]
    # The contexts the store's update adds after its first maps are for _server_hosts names,
    # which _server_names adds anyway.
    exact, wild = _first_maps(sel)
    names = _server_names(ordered, exact, wild)
    aliases = _default_aliases(ordered, exact, dict.fromkeys(names[1]))
    return not _known_name(names, aliases, server_name)


def _known_name(names: tuple[frozenset[str], frozenset[str]], default_aliases: frozenset[str],
                server_name: str | None) -> bool:
    """:meth:`CertificateStore._known`, given the store's ``_names`` and ``_default_aliases``
    (shared with :func:`handshake_refused`)."""
    if not server_name:
        return False
    exact, wild = names
    name = _norm(server_name)
    if name in exact:
        return True
    if name in default_aliases:
        return False   # the default server's name: refused there, not by the ``*.`` one
    dot = name.find(".")
    return dot > 0 and name[dot:] in wild


#: What :func:`served_certificates` loaded last, reused by PEM digest on its next call (the
#: metric is refreshed on every reload: only new certificates are loaded). Replaced as a whole.
#: Kept without their contexts (:func:`_listed_only`).
_served_loaded = [_Loaded({}, {})]
#: The one context the certificates kept there carry instead of their own (created once).
_DROPPED: list[ssl.SSLContext] = []


def _listed_only(cert: _Cert) -> _Cert:
    """``cert`` for :func:`served_certificates`' cache: its names and dates, its context
    replaced by one shared empty context that nothing serves. Each certificate is still loaded
    into a context once, so that the metric lists exactly what the store would serve (OpenSSL
    alone refuses, say, a 1024-bit RSA key: "ee key too small"); but kept, those contexts held
    about 20 KB each for nothing (20 MB for 1,000 Secrets, for the life of the process)."""
    if not _DROPPED:
        _DROPPED.append(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    if cert.ctx is _DROPPED[0]:
        return cert
    return _Cert(_DROPPED[0], cert.names, cert.not_before, cert.not_after)


def served_certificates(res: Resources, ingresses: Iterable[Ingress] | None = None
                        ) -> list[tuple[str, str, datetime.datetime]]:
    """``(host, "namespace/secret", not_after)`` for each host a fresh
    :class:`CertificateStore` updated with the same arguments serves a Secret's certificate
    (:meth:`CertificateStore.certificates`), by host: the certificate-expiry metric's list.
    Wildcards as ``*.suffix``; hosts left on the default certificate are not listed."""
    sel = _select(res, ingresses, _Loaded(_served_loaded[0].cache, {}))
    _served_loaded[0] = _Loaded({d: _listed_only(c) for d, c in sel.loaded.cache.items()}, {})
    return _certificates(sel)


def _certificates(sel: _Selection) -> list[tuple[str, str, datetime.datetime]]:
    return sorted((host, f"{ns}/{name}", cert.not_after)
                  for host, (cert, (ns, name)) in sel.chosen.items())


class _ListeningContext(ssl.SSLContext):
    """A host's context that the HTTPS listener listens with itself (its own options: the
    ``ssl-prefer-server-ciphers`` annotation), not switched to from :attr:`default_context`
    (``proxy/_server.py`` ``_TLSAccept``)."""

    listens = True


def _reject_context(tls: TLSSettings, named: bool) -> ssl.SSLContext:
    """A context without a certificate that refuses every handshake (``ssl-reject-handshake``):
    ``named``, with an SNI callback answering the ``unrecognized_name`` alert, as nginx's
    ``ngx_http_ssl_servername`` does for its ``ssl_reject_handshake`` server ("*ad =
    SSL_AD_UNRECOGNIZED_NAME; return SSL_TLSEXT_ERR_ALERT_FATAL"); OpenSSL calls it without
    SNI too. Else no callback (a name that is not ASCII, which CPython cannot decode): the
    handshake fails for want of a certificate (``handshake_failure``)."""
    ctx = _ListeningContext(ssl.PROTOCOL_TLS_SERVER)
    apply(ctx, tls)
    if named:
        def refuse(obj: Any, name: str | None, c: ssl.SSLContext) -> int:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        ctx.sni_callback = refuse
    return ctx


def _server_hosts(ordered: list[Ingress]) -> set[str]:
    """The names (normalised, ``*.`` ones included) that nginx.tmpl writes into a
    ``server_name`` of its own for the non-canary Ingresses ``ordered``: their rule hosts,
    their ``server-alias`` names (``_aliases_of``) and the www twins of ``from-to-www-redirect``
    (``_www_twins``: a redirect server block of their own, ``RedirectServers``). Not the
    ``server-alias`` names of a rule without ``host``: nginx.tmpl writes them into the default
    server ``_``'s ``server_name`` (controller.go ``createServers``: ``servers[host].Aliases``
    with ``host = defServerName``), which answers them as it answers unknown names (its
    ``ssl-ciphers``, its ``ssl_reject_handshake``)."""
    names = {h for hosts in _rule_hosts(ordered) for h in hosts}
    names.update(_norm(a) for a, (host, _ing) in _aliases_of(ordered).items()
                 if host is not None)
    names.update(_www_twins(ordered))
    return names


def _server_names(ordered: list[Ingress], exact: Mapping[str, Any], wild: Mapping[str, Any]
                  ) -> tuple[frozenset[str], frozenset[str]]:
    """The names the servers of the non-canary Ingresses ``ordered`` answer, as ``(exact,
    ".suffix" of the ``*.`` names)``: their rule hosts, their ``server-alias`` names, their
    www twins (``_server_hosts``), and the names with a certificate (``exact``/``wild``:
    ``tls.hosts`` extension)."""
    names = set(exact)
    suffixes = set(wild)
    for h in _server_hosts(ordered):
        if h.startswith("*."):
            suffixes.add(h[1:])
        else:
            names.add(h)
    return frozenset(names), frozenset(suffixes)


def _default_aliases(ordered: list[Ingress], exact: Mapping[str, Any],
                     wild: Mapping[str, Any]) -> frozenset[str]:
    """The ``server-alias`` names of rules without ``host`` (exact names of the default server
    ``_``: ``_server_hosts``) that a ``*.`` entry of ``wild`` would answer otherwise: no other
    server has them and they have no context of their own. nginx looks exact names up before
    wildcard ones: the default server answers them (its ``ssl_reject_handshake``). Their
    certificate is ingress-nginx's certificate lookup's (``certificate.lua``
    ``get_pem_cert_uid``): the alias's own entry (``configureCertificates``: the default
    server's certificate when it is valid for the alias), else, as ``emptyUID`` is deleted
    from ``certificate_servers`` (``configuration.lua``), the ``*.`` entry's."""
    aliases = _aliases_of(ordered) if wild else {}
    if not aliases:
        return frozenset()
    servers = _server_hosts(ordered)
    out: set[str] = set()
    for alias, (host, _ing) in aliases.items():
        name = _norm(alias)
        dot = name.find(".")
        if (host is None and name not in servers and name not in exact and dot > 0
                and name[dot:] in wild):
            out.add(name)
    return frozenset(out)


@dataclass(slots=True, eq=False)
class _TLSJob:
    """One request for new TLS settings (:meth:`CertificateStore.ask_tls`): its number, the
    settings, what :meth:`CertificateStore.build_tls` built (the store's attributes, swapped in
    by :meth:`CertificateStore.commit_tls`) and from which decision (the store's update count).
    """

    number: int
    tls: TLSSettings
    #: Contexts built so far, by the old certificate's id (kept with it): a second try reuses.
    rebuilt: dict[int, tuple[_Cert, _Cert]] = dataclasses.field(default_factory=dict)
    updates: int = -1
    state: dict[str, Any] | None = None
    #: The problems' lines an earlier try logged (the next try logs only new ones).
    logged: frozenset[str] = frozenset()


#: The store's attributes a staged rebuild does not carry over: the lock and the counters.
_NOT_STAGED = frozenset({"_lock", "_tls_numbers", "_tls_asked", "_updates"})


class CertificateStore:
    """Per-host TLS contexts built from the TLS Secrets the Ingresses name.

    >>> store = CertificateStore()
    >>> ctx = store.server_context()      # give this to the HTTPS listener
    >>> problems = store.update(Resources())
    >>> store.context_for("unknown.test") is store.default_context
    True

    ``default_secret="namespace/name"`` (``serve --default-ssl-certificate``, ingress-nginx's
    flag): that Secret of each :meth:`update`'s Resources is the default certificate, for no
    SNI, unknown names and hosts without a usable certificate of their own; while it is
    missing or unusable, ``default_cert`` (else the generated one) serves, and a warning says
    so. A change of its certificate replaces :attr:`default_context` (a new session cache).
    Its problems name it ``"Secret namespace/name"``; ``default_source`` replaces ``"Secret"``
    there (``serve`` passes its flag, ``"--default-ssl-certificate"``).
    """

    def __init__(self, default_cert: tuple[bytes, bytes] | None = None, *,
                 default_secret: str | None = None,
                 default_source: str | None = None) -> None:
        if default_secret is not None and not isinstance(default_secret, str):
            # Checked here, or it would fail as "'int' object has no attribute 'partition'".
            raise TypeError('default_secret: expected a str "namespace/name" or None, got '
                            f"{type(default_secret).__name__}")
        try:
            #: ``(namespace, name)`` of a ``kubernetes.io/tls`` Secret to serve as the default
            #: certificate (ingress-nginx's ``--default-ssl-certificate``), read from the
            #: Resources of each :meth:`update`; ``default_cert`` serves while it is missing
            #: or unusable.
            self._default_ref = (None if default_secret is None
                                 else parse_secret_ref(default_secret))
        except ValueError as e:
            # parse_secret_ref's text is serve's (after its flag); here it names the argument.
            raise ValueError(f"default_secret={e}") from None
        #: How problems name the default Secret (``"<source> namespace/name"``).
        self._default_source = "Secret" if default_source is None else default_source
        #: What serves while the default Secret cannot, as its problems name it.
        self._fallback_name = ("the generated default certificate" if default_cert is None
                               else "the default_cert given")
        if default_cert is None:
            default_cert = generate_certificate(["ingress.local"], common_name=DEFAULT_CERT_NAME)
        #: The constructor's default (generated or ``default_cert``), the fallback.
        self._fallback: tuple[ssl.SSLContext, tuple[bytes, bytes]] | None = None
        #: The default Secret's certificate in use (its PEM digest, the loaded certificate and
        #: the Secret's ``namespace/name``), if any.
        self._default_loaded: tuple[bytes, _Cert, str] | None = None
        #: The default certificate's context, with no SNI callback: the built-in HTTPS listener
        #: listens with it (its session cache serves every certificate) and switches to the
        #: context :meth:`context_for_hello` chooses before OpenSSL reads the ClientHello, so
        #: that no Python callback ever sees a name (``proxy/_client_hello.py``).
        self.default_context = _new_context(*default_cert)
        self._default_cert = default_cert
        self._fallback = (self.default_context, default_cert)
        #: The constructor's default certificate's ``notAfter`` (its expiry series).
        self._fallback_not_after = _validity(default_cert[0])[1]
        #: (exact host -> context, wildcard suffix ``".example.test"`` -> context), as ONE
        #: attribute: a handshake on the event loop while update() runs in a worker thread sees
        #: the old pair or the new pair, never the new exact map with the old wildcards.
        self._maps: tuple[Mapping[str, ssl.SSLContext], Mapping[str, ssl.SSLContext]] = ({}, {})
        #: Hosts with TLS configured, whether or not their certificate could be used
        #: (``tls_hosts``' decision). See :meth:`has_tls`.
        self._tls_hosts = TLSHosts()
        # Loaded Secrets by a digest of their PEM, so a reload that keeps a certificate reuses it.
        self._cache: Mapping[bytes, _Cert] = {}
        #: The last certificate each Secret (namespace, name) loaded successfully: a broken
        #: update of the Secret keeps it (see :meth:`_Loader.entry`).
        self._last_good: Mapping[tuple[str, str], _Cert] = {}
        self._server_ctx: ssl.SSLContext | None = None
        #: The last :meth:`update`'s decision (:meth:`certificates`).
        self._selection: _Selection | None = None
        #: The lines of the problems the last :meth:`update` reported: only new ones are logged.
        self._logged: frozenset[str] = frozenset()
        #: Every rule host with the client certificate authentication its server takes (None:
        #: none), from the last :meth:`update` (:meth:`client_auth`).
        self._auths: Mapping[str, ClientCertAuth | None] = {}
        #: The contexts of hosts with client certificate authentication, by (certificate PEM,
        #: configuration key): an update that keeps both keeps the context (its sessions).
        self._auth_ctxs: Mapping[tuple[tuple[bytes, bytes], str], ssl.SSLContext] = {}
        #: The problems of the Secrets ``auth-tls-secret`` names, found by the last update.
        self._auth_problems: list[TLSProblem] = []
        #: The TLS settings every context is built with (:meth:`configure_tls`).
        self._tls: TLSSettings = DEFAULT_TLS
        #: Held by :meth:`update` and :meth:`configure_tls`: a settings change on the event
        #: loop while a cluster snapshot is applied in a worker thread must not leave that
        #: snapshot's contexts, built with the old settings, in place.
        self._lock = threading.RLock()
        #: The last :meth:`update`'s arguments: :meth:`configure_tls` decides again with them.
        self._last_args: tuple[Resources, Iterable[Ingress] | None] | None = None
        #: The contexts of hosts with their own ``ssl-ciphers`` / ``ssl-prefer-server-ciphers``,
        #: by (certificate PEM, settings): an update that keeps both keeps the context.
        self._cipher_ctxs: Mapping[tuple[tuple[bytes, bytes], ServerCiphers],
                                   ssl.SSLContext] = {}
        #: ``ssl-reject-handshake``: (the context refusing a ClientHello with an unknown server
        #: name, the one for a name that is not ASCII); None: off.
        self._reject: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
        #: The server names (exact, ``*.`` suffixes) of the last update, for ``_reject``.
        self._names: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        #: The default server's ``server-alias`` names under a ``*.`` name (``_default_aliases``:
        #: of a certificate; with ``ssl-reject-handshake``, of any server, for ``_known``).
        self._default_aliases: frozenset[str] = frozenset()
        #: Their contexts when a rule without host sets ``ssl-ciphers`` (the ``*.``
        #: certificate with those), by (PEM, ciphers, TLS settings): reused by the next update.
        self._alias_ctxs: Mapping[tuple[Any, ...], ssl.SSLContext] = {}
        #: The default server's own context (``ssl-ciphers`` / ``ssl-prefer-server-ciphers``
        #: of a rule without ``host``: ``_tls_settings.default_server_ciphers``), for a
        #: ClientHello without SNI or naming no server; None: :attr:`default_context`. With
        #: the settings it was built from (kept while they last).
        self._default_server: ssl.SSLContext | None = None
        self._default_server_key: tuple[tuple[bytes, bytes], ServerCiphers] | None = None
        #: Numbers the TLS settings asked for (:meth:`configure_tls`, :meth:`ask_tls`): a
        #: rebuild for an older number is dropped (two reloads racing end with the newest).
        self._tls_numbers = itertools.count(1)
        self._tls_asked = 0
        #: Counts the decisions (:meth:`_update`): a rebuild made off the event loop is swapped
        #: in only when no update came meanwhile (:meth:`commit_tls`).
        self._updates = 0

    # -- building -----------------------------------------------------------------------------

    def update(
        self, res: Resources, ingresses: Iterable[Ingress] | None = None
    ) -> list[TLSProblem]:
        """Replace the host map from ``res`` (only ``ingresses`` when given: the served ones).

        Returns the problems found; the affected hosts fall back to the default certificate
        (problems with ``warning=True`` keep a certificate: expired, not yet valid, expiring
        within 10 days; or a Secret that loaded before and is now broken, which keeps serving
        its last good certificate until it is fixed or deleted, as in ingress-nginx). Each is
        logged (logger ``ingresslib.tls``) when the previous update did not report it: a
        problem that lasts is logged once, not again at every cluster snapshot (endpoint churn
        updates every few seconds), as ``serve`` logs its other notes.

        Which certificate a host gets, as ingress-nginx's ``createServers`` /
        ``extractTLSSecretName`` choose it:

        1. Ingresses oldest first (SEMANTICS §4.3); the first usable certificate wins. Within an
           Ingress that has a rule for the host: an entry listing the host in ``tls.hosts``,
           else any entry whose certificate covers the host ("no TLS host matching host name,
           try each TLS host for matching SAN or CN") -- this is how an entry with empty
           ``hosts`` applies to the rule hosts.
        2. A certificate must cover the host (SAN, or the CN without SAN); one that does not is
           reported and skipped ("Using default certificate"), so it can neither be served for
           a name it does not cover nor hide another Ingress's valid certificate. (Unlike
           ingress-nginx >= 1.x, which pins the default certificate on the first failure.)
           A rule host that no entry of its Ingress lists and none of that Ingress's
           certificates covers (an entry without ``hosts`` whose certificate does not name
           it) gets the default certificate and stays a TLS host, as in ingress-nginx; that is
           reported too (ingress-nginx logs it at ``-v 3`` only).
        3. ingresslib extension: a ``tls.hosts`` name for which the Ingress has no rule (e.g. an
           Ingress with only ``tls``) is served too, but only when no Ingress with a rule for
           that host supplied one (ingress-nginx ignores such names: ``createServers`` asks
           ``extractTLSSecretName`` for the Ingress's own rule hosts only). Only within a
           tenant: the name applies when no served Ingress routes the host, or when the one
           that does (the oldest non-canary Ingress with a rule for it; else, for a
           ``from-to-www-redirect`` twin (5.), the Ingress asking for it, whose redirect answers
           the twin; else one with a ``*.`` rule covering it) is in the listing's namespace.
           Otherwise the listing is ignored (no certificate, no TLS host), so that no namespace
           can redirect another's plain-HTTP host (or twin) to HTTPS and serve it its own
           certificate; reported (``warning=True``) when the host is not a TLS host of its own
           (its owner's ``tls``).
           A listed ``*.`` name applies likewise, and does not stand for the exact hosts other
           namespaces route (neither their certificate nor TLS hosts through it; reported
           likewise); a ``*.`` rule host still does, as in ingress-nginx.
        4. Canary Ingresses (``nginx.ingress.kubernetes.io/canary: "true"``) take no part, as in
           ingress-nginx: their ``tls`` supplies no certificate and makes no host a TLS host; a
           canary naming a Secret no non-canary Ingress of its namespace names is reported
           (``warning=True``).
        5. The www / non-www twin of a rule host whose Ingress sets ``from-to-www-redirect``
           (the twins the proxy redirects) gets the host's certificate when it covers the twin,
           before any ``tls.hosts`` extension (3.), for which the twin is routed by that
           Ingress; when it does not, and nothing else serves the twin, that is reported
           (``warning=True``), as ingress-nginx warns.
        """
        with self._lock:   # (configure_tls, on another thread, decides again too)
            return self._update(res, ingresses)

    def _update(self, res: Resources, ingresses: Iterable[Ingress] | None
                ) -> list[TLSProblem]:
        if ingresses is not None and not isinstance(ingresses, (list, tuple)):
            ingresses = list(ingresses)   # (kept for configure_tls, and read twice below)
        self._last_args = (res, ingresses)
        self._updates += 1
        dh_problems: list[TLSProblem] = []
        reject: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
        dh_changed = False
        if self._tls.dh_param:
            # ssl-dh-param: its Secret is one of these Resources; a change of its parameters
            # (or of whether they are usable) builds every context again.
            pem, dh_problems = _dh_params(res, self._tls.dh_param, self._tls.dh_pem)
            if pem != self._tls.dh_pem:
                reject = self._rebuild(dataclasses.replace(self._tls, dh_pem=pem), None)
                dh_changed = True
                if pem:   # (its Secret came after the settings: "not found" was said then)
                    _log.info("ConfigMap: data.ssl-dh-param: Secret %s: DH parameters loaded, "
                              "the DHE cipher suites are offered", self._tls.dh_param)
        sel = _select(res, ingresses, _Loaded(self._cache, self._last_good), note=True,
                      tls_settings=self._tls)
        problems = sel.problems
        if self._default_ref is not None:
            # Before the maps: the hosts left on the default certificate get the new one.
            problems = [*problems, *self._update_default(res)]
        # The TLS hosts (ssl-redirect, HSTS) whatever certificate they got: ``_configured``,
        # shared with ``tls_hosts`` (``explain --tls``).
        self._tls_hosts = sel.tls_hosts
        # The default certificate, so that the lookup does not fall back to the wildcard.
        exact: dict[str, ssl.SSLContext] = dict.fromkeys(sel.kept, self.default_context)
        wild: dict[str, ssl.SSLContext] = {}
        for host, (cert, _secret) in sel.chosen.items():
            if host.startswith("*."):
                wild[host[1:]] = cert.ctx
            else:
                exact[host] = cert.ctx
        self._auth_problems = []
        ordered = _main_ingresses(res, ingresses)[0]
        ciphers = self._server_ciphers(ordered, sel, exact, wild)
        self._client_auth_maps(res, ingresses, sel, exact, wild, ciphers)
        default_server = self._default_server_context(ordered, exact, wild)
        problems = [*problems, *self._auth_problems, *dh_problems]
        if self._tls.reject_handshake:
            self._names = _server_names(ordered, exact, wild)
        default_aliases = _default_aliases(ordered, exact, wild)
        # ssl-reject-handshake refuses them under any ``*.`` server name, one without a
        # certificate too (``_known``: nginx finds the default server's exact name first).
        refused = (_default_aliases(ordered, exact, dict.fromkeys(self._names[1]))
                   if self._tls.reject_handshake else default_aliases)
        loaded = self._default_loaded
        sc = self._default_server_key[1] if (default_server is not None
                                             and self._default_server_key) else None
        alias_ctxs: dict[tuple[Any, ...], ssl.SSLContext] = {}
        for name in default_aliases:
            # Their certificate is the lookup's: the default server's when it covers the alias
            # (nginx.go configureCertificates), else "emptyUID", which configuration.lua
            # deletes from certificate_servers, so that certificate.lua falls back to the "*."
            # entry; with the default server's ciphers, not the "*." server's.
            hit = _chosen_for(sel.chosen, sel.kept, name)
            if hit is None or (loaded is not None and _covers(loaded[1].names, name)):
                exact[name] = default_server or self.default_context
            elif sc is not None:   # (a rule without host sets ssl-ciphers: theirs)
                key = (hit[0].pem, sc, self._tls)
                ctx = alias_ctxs.get(key) or self._alias_ctxs.get(key)
                if ctx is None:
                    ctx = _new_context(*hit[0].pem, cls=_ListeningContext, tls=self._tls,
                                       ciphers=sc.ciphers, prefer=sc.prefer)
                alias_ctxs[key] = exact[name] = ctx
            elif wild[name[name.find("."):]] is not hit[0].ctx:
                exact[name] = hit[0].ctx   # (the ConfigMap's ciphers)
        self._alias_ctxs = alias_ctxs
        self._default_aliases = refused
        # One assignment: a concurrent handshake sees the old maps or the new ones.
        self._maps = (exact, wild)
        self._default_server = default_server
        if dh_changed:
            self._reject = reject
        self._selection = sel
        self._cache = sel.loaded.cache
        self._last_good = sel.loaded.last_good
        lines = [str(p) for p in problems]
        for line in lines:
            if line not in self._logged:
                # As ``check`` prints it; the logger's name says "tls" (no "tls: tls: ...").
                _log.warning("%s", line)
        self._logged = frozenset(lines)
        return problems

    def _server_ciphers(self, ordered: list[Ingress], sel: _Selection,
                        exact: dict[str, ssl.SSLContext], wild: dict[str, ssl.SSLContext]
                        ) -> Mapping[str, ServerCiphers]:
        """Give each host whose server has its own ``ssl-ciphers`` / ``ssl-prefer-server-
        ciphers`` (the annotations, the first Ingress's that sets each for the host:
        ``_tls_settings.server_ciphers``) a context of its own carrying them, with its
        certificate (or the default one). The HTTPS listener listens with it
        (:class:`_ListeningContext`): OpenSSL takes the cipher preference option from the
        listening context, not from the one the SNI switch selects (nginx's servername callback
        copies the options, Python cannot). Returns the hosts' settings, for the hosts with
        client certificate authentication (:meth:`_client_auth_maps`)."""
        from .proxy._annotations import PREFIX

        keys = (PREFIX + "ssl-ciphers", PREFIX + "ssl-prefer-server-ciphers")
        if not any(k in ing.metadata.annotations for ing in ordered for k in keys):
            self._cipher_ctxs = {}
            return {}
        refused: list[tuple[str, str, str]] = []
        hosts = server_ciphers(ordered, PREFIX, refused)
        # Logged with the certificates' problems (once while it lasts).
        self._auth_problems += [TLSProblem(f"Ingress {ref}", f"metadata.annotations[{key}]",
                                           why, warning=True) for ref, key, why in refused]
        ctxs: dict[tuple[tuple[bytes, bytes], ServerCiphers], ssl.SSLContext] = {}
        for host, sc in hosts.items():
            hit = _chosen_for(sel.chosen, sel.kept, host)
            pem = hit[0].pem if hit is not None else self._default_cert
            ck = (pem, sc)
            ctx = ctxs.get(ck) or self._cipher_ctxs.get(ck)
            if ctx is None:
                ctx = _new_context(*pem, cls=_ListeningContext, tls=self._tls,
                                   ciphers=sc.ciphers, prefer=sc.prefer)
            ctxs[ck] = ctx
            if host.startswith("*."):
                wild[host[1:]] = ctx
            else:
                exact[host] = ctx
        if any(h.startswith("*.") for h in hosts):
            # A name with a server of its own (nginx: an exact server_name before a wildcard
            # one) never takes a ``*.`` server's ciphers: given by name its own certificate's
            # context (the ConfigMap's ciphers), as _client_auth_maps does for auth-tls. It
            # fell back to the wildcard's context, whose ssl-ciphers the ConfigMap may forbid.
            for name in _server_hosts(ordered):
                dot = name.find(".")
                if (name in hosts or name in exact or name.startswith("*.") or dot <= 0
                        or name[dot:] not in wild or wild[name[dot:]] not in ctxs.values()):
                    continue
                hit = _chosen_for(sel.chosen, sel.kept, name)
                exact[name] = hit[0].ctx if hit is not None else self.default_context
        self._cipher_ctxs = ctxs
        return hosts

    def _default_server_context(self, ordered: list[Ingress],
                                exact: dict[str, ssl.SSLContext],
                                wild: dict[str, ssl.SSLContext]) -> ssl.SSLContext | None:
        """The default server ``_``'s own context, when a rule without ``host`` sets
        ``ssl-ciphers`` / ``ssl-prefer-server-ciphers`` (``default_server_ciphers``, as
        ingress-nginx's ``createServers`` gives them to ``servers["_"]``): the default
        certificate with those settings, for a ClientHello without SNI or naming no server.
        Every name with a server of its own (rule hosts, ``server-alias`` names, www twins,
        ``*.`` rule hosts) that has no context yet is then given :attr:`default_context` by
        name (the ConfigMap's ciphers, as its own server block has in nginx), so that it does
        not take the default server's. None: none set."""
        from .proxy._annotations import PREFIX

        keys = (PREFIX + "ssl-ciphers", PREFIX + "ssl-prefer-server-ciphers")
        if not any(k in ing.metadata.annotations for ing in ordered for k in keys):
            self._default_server_key = None
            return None
        sc = default_server_ciphers(ordered, PREFIX)
        if sc is None:
            self._default_server_key = None
            return None
        key = (self._default_cert, sc)
        ctx = self._default_server
        if ctx is None or key != self._default_server_key:
            ctx = _new_context(*self._default_cert, cls=_ListeningContext, tls=self._tls,
                               ciphers=sc.ciphers, prefer=sc.prefer)
            self._default_server_key = key
        for name in _server_hosts(ordered):
            if name.startswith("*."):
                wild.setdefault(name[1:], self.default_context)
                continue
            dot = name.find(".")
            if name not in exact and not (dot > 0 and name[dot:] in wild):
                exact[name] = self.default_context
        return ctx

    def configure_tls(self, settings: Any) -> None:
        """Build every context with the TLS settings of ``settings`` (a ``ProxySettings``: its
        ``ssl_*`` fields, the ConfigMap's ``ssl-protocols``, ``ssl-ciphers``,
        ``ssl-ecdh-curve``, ``ssl-session-tickets``, ``ssl-reject-handshake``, ``ssl-dh-param``;
        ``serve``'s reloads build them in a worker thread instead: ``_tls_reconfigure``).
        ``ProxyServer`` calls it with its settings, at construction and at each change.
        Unchanged settings change nothing; else each certificate is loaded again into a new
        context (and the last :meth:`update` decided again), a new :attr:`default_context` (a
        new session cache) included: about a millisecond per certificate, here, on the
        caller's thread. Connections already established keep their context. It decides again
        with the last update's resources, taking turns with :meth:`update` (a lock), from any
        thread; a handshake starting on another thread meanwhile may get old and new contexts
        mixed, so ``ProxyServer`` calls it on its event loop, where none starts meanwhile.

        ``serve``'s ConfigMap reload builds them off the event loop instead
        (:meth:`ask_tls`, :meth:`build_tls` in a worker thread, :meth:`commit_tls` on the
        loop: ``_tls_reconfigure.configure_tls_off_loop``), so that the listener goes on
        answering with the old contexts meanwhile. A call here supersedes such a build still
        running (the newest settings asked for win)."""
        job = self.ask_tls(settings)
        if job is None:
            return
        with self._lock:
            self._configure(job.tls)

    def ask_tls(self, settings: Any) -> _TLSJob | None:
        """Ask for the TLS settings of ``settings`` (as :meth:`configure_tls`), to be built by
        :meth:`build_tls` (any thread) and swapped in by :meth:`commit_tls` (the event loop).
        Numbers the request: a job of an earlier request still running is then dropped.
        None: the settings in use already (nothing to build)."""
        tls = settings if isinstance(settings, TLSSettings) else tls_settings_of(settings)
        if tls.dh_param == self._tls.dh_param and not tls.dh_pem:
            # The ssl-dh-param Secret's parameters the last update found (its Resources').
            tls = dataclasses.replace(tls, dh_pem=self._tls.dh_pem)
        number = next(self._tls_numbers)
        self._tls_asked = number
        if tls == self._tls:
            return None
        return _TLSJob(number, tls)

    def build_tls(self, job: _TLSJob) -> _TLSJob | None:
        """Build ``job``'s contexts aside (a worker thread: the store in use is not touched):
        every certificate loaded again, the last :meth:`update` decided again. Returns ``job``
        ready for :meth:`commit_tls`; None when a newer request superseded it. Contexts built
        by an earlier try of the same job are reused (:meth:`commit_tls` refused it because an
        update came meanwhile)."""
        with self._lock:
            if job.number != self._tls_asked:
                return None
            staged = copy.copy(self)
            # Each problem once per request: a try refused by commit_tls logged them already.
            staged._logged = self._logged | job.logged
            staged._configure(job.tls, job.rebuilt)
            job.logged = job.logged | staged._logged
            job.updates = self._updates
            job.state = {k: v for k, v in vars(staged).items() if k not in _NOT_STAGED}
            return job

    def commit_tls(self, job: _TLSJob) -> bool | None:
        """Swap in what :meth:`build_tls` built, in one step (on the event loop, where
        handshakes choose their context: one sees the old set or the new one, never a mix).
        True: done; None: a newer request superseded ``job`` (nothing done); False: an
        :meth:`update` ran or runs meanwhile (nothing done): build again (the contexts built
        are reused) and commit again."""
        if job.number != self._tls_asked or job.state is None:
            return None
        if not self._lock.acquire(blocking=False):
            return False   # an update is running in a worker thread: never wait on the loop
        try:
            if self._updates != job.updates:
                return False
            vars(self).update(job.state)
            return True
        finally:
            self._lock.release()

    def _configure(self, tls: TLSSettings,
                   rebuilt: dict[int, tuple[_Cert, _Cert]] | None = None) -> None:
        if tls.dh_param != self._tls.dh_param and self._last_args is not None:
            # A new ssl-dh-param Secret: read from the last update's Resources now, so that
            # the contexts are built once (its problems are reported by the update below).
            tls = dataclasses.replace(tls, dh_pem=_dh_params(self._last_args[0],
                                                             tls.dh_param)[0])
        elif not tls.dh_param:
            tls = dataclasses.replace(tls, dh_pem=b"")
        reject = self._rebuild(tls, rebuilt)
        if self._last_args is not None:
            self._update(*self._last_args)
        else:
            self._maps = ({}, {})
        self._reject = reject

    def _rebuild(self, tls: TLSSettings, rebuilt: dict[int, tuple[_Cert, _Cert]] | None
                 ) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
        """Every context built again with ``tls`` (the host maps are the next update's);
        returns the ``ssl-reject-handshake`` pair to set once the names are known."""
        self._tls = tls
        if rebuilt is None:
            rebuilt = {}

        def again(cert: _Cert) -> _Cert:
            # By identity; the old certificate is kept with it, so that its id is not reused.
            hit = rebuilt.get(id(cert))
            if hit is not None and hit[0] is cert:
                return hit[1]
            new = dataclasses.replace(cert, ctx=_new_context(*cert.pem, tls=tls))
            rebuilt[id(cert)] = (cert, new)
            return new

        assert self._fallback is not None
        fallback_pem = self._fallback[1]
        self._fallback = (_new_context(*fallback_pem, tls=tls), fallback_pem)
        if self._default_loaded is not None:
            digest, cert, ref = self._default_loaded
            self._default_loaded = (digest, again(cert), ref)
            self.default_context = self._default_loaded[1].ctx
        else:
            self.default_context = self._fallback[0]
        self._cache = {d: again(c) for d, c in self._cache.items()}
        self._last_good = {r: again(c) for r, c in self._last_good.items()}
        self._auth_ctxs, self._cipher_ctxs = {}, {}
        self._default_server_key = None   # (built again by the next update)
        self._server_ctx = None
        # ssl-reject-handshake: never None on the way from one refusing pair to the next (an
        # unknown name would get the default certificate), and set once the names are known.
        reject = ((_reject_context(tls, True), _reject_context(tls, False))
                  if tls.reject_handshake else None)
        if reject is None:
            self._reject = None
        return reject

    def _client_auth_maps(self, res: Resources, ingresses: Iterable[Ingress] | None,
                          sel: _Selection, exact: dict[str, ssl.SSLContext],
                          wild: dict[str, ssl.SSLContext],
                          ciphers: Mapping[str, ServerCiphers] | None = None) -> None:
        """Give each host whose server verifies client certificates (``auth-tls-*``, the
        first Ingress's that sets them for the host: ``proxy/_clientcert.server_auths``) a
        context of its own: its certificate (or the default one), ``CERT_OPTIONAL`` with the
        Secret's ``ca.crt`` (and ``ca.crl``). The HTTPS listener listens with that context
        itself (its own session cache: a session of another host is never resumed here). A
        rule host without it that would fall back to such a host's ``*.`` context gets its
        own certificate's context by name, so that it is never asked for a certificate."""
        from .proxy._annotations import PREFIX
        from .proxy._clientcert import server_auths

        ordered, _canaries = _main_ingresses(res, ingresses)
        if not any(PREFIX + "auth-tls-secret" in ing.metadata.annotations for ing in ordered):
            self._auths, self._auth_ctxs = {}, {}
            return
        auths, problems = server_auths(ordered, res.secrets, PREFIX)
        # Logged with the certificates' problems (once while it lasts): the host answers 503.
        self._auth_problems += [client_auth_problem(*p) for p in problems]
        ctxs: dict[tuple[tuple[bytes, bytes], str], ssl.SSLContext] = {}
        for host, auth in auths.items():
            if auth is None or not auth.verifies:
                continue
            hit = _chosen_for(sel.chosen, sel.kept, host)
            pem = hit[0].pem if hit is not None else self._default_cert
            sc = ciphers.get(host) if ciphers else None
            ck = (pem, auth.key if sc is None else f"{auth.key}\0{sc.ciphers}\0{sc.prefer}")
            ctx = ctxs.get(ck) or self._auth_ctxs.get(ck)
            if ctx is None:
                try:
                    ctx = _auth_context(pem, auth, self._tls, sc)
                except (ssl.SSLError, ValueError, OSError) as e:
                    _log.warning("Ingress %s: client certificate authentication of %s: "
                                 "the Secret %s's ca.crt cannot be loaded (%s): the host's "
                                 "handshakes fail", auth.ingress, host, auth.secret, e)
                    ctx = _refusing_context(pem, self._tls)
            ctxs[ck] = ctx
            if host.startswith("*."):
                wild[host[1:]] = ctx
            else:
                exact[host] = ctx
        for host, auth in auths.items():
            if (auth is None or not auth.verifies) and host not in exact \
                    and not host.startswith("*."):
                dot = host.find(".")
                if dot > 0 and host[dot:] in wild and wild[host[dot:]] in ctxs.values():
                    hit = _chosen_for(sel.chosen, sel.kept, host)
                    exact[host] = hit[0].ctx if hit is not None else self.default_context
        self._auths, self._auth_ctxs = auths, ctxs

    def client_auth(self, host: str) -> ClientCertAuth | None:
        """The client certificate authentication of the server answering ``host`` (a request's
        host, normalised), from the last :meth:`update`; None: none. What the proxy core asks
        per request (``Proxy(client_auth=...)``)."""
        auths = self._auths
        if not auths:
            return None
        from .proxy._clientcert import auth_for_host
        return auth_for_host(auths, host)

    def _update_default(self, res: Resources) -> list[TLSProblem]:
        """Serve the ``default_secret`` Secret of ``res`` as the default certificate, as
        ingress-nginx's ``getDefaultSSLCertificate`` does ("read custom default SSL
        certificate, fall back to generated default certificate"): missing or unusable, the
        constructor's default serves and that is reported; a Secret that served and is then
        updated with broken content keeps its last good certificate (its ``syncSecret``
        leaves the local store as it was), until it is fixed or deleted. Unchanged content
        keeps its context (and the listening context's session cache)."""
        assert self._default_ref is not None and self._fallback is not None
        ns, name = self._default_ref
        what = f"{self._default_source} {ns}/{name}"
        loaded = self._default_loaded
        secret, digest, cert, why = _read_default(res, self._default_ref, self._tls, loaded)
        if secret is None:
            self._default_loaded = None
            self.default_context, self._default_cert = self._fallback
            return [TLSProblem("default certificate", what,
                               f"{why}; serving {self._fallback_name}")]
        if loaded is not None and cert is loaded[1]:
            return self._default_dates(what)
        if why is not None:
            if self._default_loaded is not None:
                return [TLSProblem("default certificate", what, f"{why}; still serving its "
                                   "last good certificate", warning=True),
                        *self._default_dates(what)]
            self.default_context, self._default_cert = self._fallback
            return [TLSProblem("default certificate", what,
                               f"{why}; serving {self._fallback_name}")]
        assert cert is not None
        self._default_loaded = (digest, cert, secret.metadata.ref)
        self.default_context, self._default_cert = cert.ctx, cert.pem
        return self._default_dates(what)

    def _default_dates(self, what: str) -> list[TLSProblem]:
        """The date warnings of the default Secret's certificate in use (its last good one
        included), at every update while they last, as those of the Ingresses' certificates:
        :meth:`update` logs each once. ingresslib's own: ingress-nginx checks the dates only
        in ``createServers``' loop over the Ingresses' TLS hosts, so its default certificate
        gets no warning, only its ``host="_"`` series. A generated default (or the
        constructor's ``default_cert``) gets none here either: no Secret to renew."""
        assert self._default_loaded is not None
        _digest, cert, _ref = self._default_loaded
        # ``what`` names the Secret: ``ref`` is not repeated ("its certificate").
        return _date_problems("default certificate", what, None, cert,
                              datetime.datetime.now(datetime.timezone.utc))

    def certificates(self, *, default: bool = False) -> list[tuple[str, str, datetime.datetime]]:
        """``(host, "namespace/secret", not_after)`` for each host the last :meth:`update`
        serves a Secret's certificate (a Secret's last good one included), by host: what the
        certificate-expiry metric lists (``Metrics.set_certificates``). Wildcards as
        ``*.suffix``; hosts left on the default certificate are not listed.

        ``default=True`` adds the default certificate's row, as ingress-nginx exports its
        default server's: host ``"_"``, the ``default_secret``'s ``"namespace/name"`` while it
        serves (its last good certificate included), else ``""`` (the generated certificate or
        the constructor's ``default_cert``, which ingress-nginx exports too: its fake
        certificate is the default server's ``SSLCert``). What ``serve`` exports."""
        sel = self._selection
        rows = [] if sel is None else _certificates(sel)
        if default:
            loaded = self._default_loaded
            if loaded is not None:
                rows.append((DEFAULT_SERVER_NAME, loaded[2], loaded[1].not_after))
            else:
                rows.append((DEFAULT_SERVER_NAME, "", self._fallback_not_after))
        return rows

    # -- lookup -------------------------------------------------------------------------------

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """The context to answer a ClientHello with ``server_name``.

        A wildcard covers exactly one label: ``*.example.test`` serves ``a.example.test``, not
        ``example.test`` nor ``a.b.example.test`` (RFC 6125 §6.4.3, and what clients accept).
        No SNI (IP-literal clients) and unknown names get the default certificate.
        """
        if not server_name:
            return self._default_server or self.default_context
        exact, wild = self._maps
        name = _norm(server_name)
        ctx = exact.get(name)
        if ctx is not None:
            return ctx
        dot = name.find(".")
        if dot > 0:
            ctx = wild.get(name[dot:])
            if ctx is not None:
                return ctx
        # The default server ``_`` (its own ssl-ciphers: ``_default_server_context``).
        return self._default_server or self.default_context

    def context_for_hello(self, server_name: bytes | None) -> ssl.SSLContext:
        """The context to answer a ClientHello whose server_name extension holds the raw bytes
        ``server_name`` (None: no SNI), as the HTTPS listener reads them before any handshake.

        A name that is not ASCII (raw UTF-8 from a broken or hostile client) gets the default
        certificate, as in ingress-nginx: ``certificate.lua`` lowercases only ``[A-Z]``, finds no
        certificate for it and falls back to the default one (``get_pem_cert_uid(hostname)``,
        then ``get_pem_cert_uid(DEFAULT_CERT_HOSTNAME)``). The ``sni_callback`` of
        :meth:`server_context` cannot do this: CPython fails to decode such a name before the
        callback runs and ends the handshake with an ``internal_error`` alert.
        """
        reject = self._reject
        if reject is not None:
            return self._rejecting_hello(server_name, reject)
        if not server_name:
            return self._default_server or self.default_context
        try:
            name = server_name.decode("ascii")
        except UnicodeDecodeError:
            return self._default_server or self.default_context
        return self.context_for(name)

    def _rejecting_hello(self, server_name: bytes | None,
                         reject: tuple[ssl.SSLContext, ssl.SSLContext]) -> ssl.SSLContext:
        """:meth:`context_for_hello` under ``ssl-reject-handshake``: a name no server has
        (nor none, nor one that is not ASCII) gets a context that refuses the handshake."""
        if not server_name:
            return reject[0]
        try:
            name = server_name.decode("ascii")
        except UnicodeDecodeError:
            # (No Python callback for it: CPython could not decode it. No certificate: the
            # handshake fails with handshake_failure instead of unrecognized_name.)
            return reject[1]
        if not self._known(name):
            return reject[0]
        return self.context_for(name)

    def _known(self, server_name: str | None) -> bool:
        """Whether a server answers ``server_name`` (``ssl-reject-handshake``): a rule host
        or ``server-alias`` of a served Ingress, a name with a certificate, or one a ``*.``
        rule host or certificate stands for. ingress-nginx writes ``ssl_reject_handshake on``
        in its default server only (nginx.tmpl, ``$all.Cfg.SSLRejectHandshake``), so every
        Ingress host, TLS or not, keeps its server's certificate; the rest, and a ClientHello
        without SNI, are refused."""
        return _known_name(self._names, self._default_aliases, server_name)

    def has_tls(self, host: str) -> bool:
        """Whether an Ingress configures TLS for ``host`` (a rule host of an Ingress with a
        ``tls`` section, or a ``tls.hosts`` name), whatever certificate it ends up with: what
        ``ssl-redirect`` and HSTS follow, as in ingress-nginx. Wildcards as in
        :meth:`context_for`, also for a host that an Ingress without TLS names exactly (see
        ``_tls_hosts.py``'s docstring: ingress-nginx's certificate lookup falls back to the
        wildcard)."""
        return self._tls_hosts(host)

    @property
    def hosts(self) -> frozenset[str]:
        """Every host name with a certificate (wildcards as ``*.suffix``)."""
        exact, wild = self._maps
        return (frozenset(h for h, ctx in exact.items()
                          if ctx is not self.default_context and ctx is not self._default_server)
                | frozenset("*" + s for s, ctx in wild.items() if ctx is not self.default_context))

    def _sni_callback(
        self, ssl_obj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        if self._reject is not None and not self._known(server_name):
            # ssl-reject-handshake: nginx's ngx_http_ssl_servername, "*ad =
            # SSL_AD_UNRECOGNIZED_NAME; return SSL_TLSEXT_ERR_ALERT_FATAL".
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        ctx = self.context_for(server_name)
        if ctx is not _ctx:
            ssl_obj.context = ctx
        return None

    def server_context(self) -> ssl.SSLContext:
        """The context for a listening socket of your own (``asyncio.start_server(ssl=...)``,
        an ASGI server's SSL option): the default certificate plus SNI selection by callback.
        A context of its own, so that :attr:`default_context` stays free of the callback.

        Known limit of the callback (the ``ssl`` module's): a ClientHello whose server name is
        not ASCII fails its handshake, and CPython reports the decoding error through
        ``sys.unraisablehook`` (stderr). ``ingresslib``'s own HTTPS listener
        (:class:`~ingresslib.proxy.ProxyServer`) does not use this context: it reads the name
        itself and serves such a name the default certificate (:meth:`context_for_hello`).
        A host with client certificate authentication (``auth-tls-*``) is not asked for a
        certificate through this context: OpenSSL keeps the listening context's verify mode
        when the callback switches (``SSL_set_SSL_CTX``; nginx's servername callback copies
        it, Python cannot), so :func:`client_cert_of` finds none (``NONE``, never ``SUCCESS``).
        """
        if self._server_ctx is None:
            ctx = _new_context(*self._default_cert, tls=self._tls)
            ctx.sni_callback = self._sni_callback
            self._server_ctx = ctx
        return self._server_ctx
