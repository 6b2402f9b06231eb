"""Client certificate authentication (``auth-tls-*``): what the sans-IO core decides per
request, from a server's (host's) configuration and what the TLS driver learnt in the handshake.

ingress-nginx (annotations/authtls/main.go ``Parse``) reads ``auth-tls-secret``
(``namespace/name``; k8s.ParseNameNS, a Secret of the Ingress's own namespace), the Secret's
``ca.crt`` (and ``ca.crl``), ``auth-tls-verify-client`` (``on``, ``off``, ``optional``,
``optional_no_ca``; anything else: ``on``), ``auth-tls-verify-depth`` (default 1, 0 read as 1),
``auth-tls-error-page``, ``auth-tls-pass-certificate-to-upstream`` and ``auth-tls-match-cn``
(``CN=`` and a regex). A server (host) takes these from the first Ingress, oldest first, that
sets them for it (controller.go ``createServers``: "if server.CertificateAuth.CAFileName == ""
{ server.CertificateAuth = anns.CertificateAuth }"); they then apply to every request of the
host, whichever Ingress routes the path. nginx.tmpl writes them in the server block
(``ssl_client_certificate``, ``ssl_verify_client``, ``ssl_verify_depth``, ``ssl_crl``,
``error_page 495 496 = <page>``, ``if ($ssl_client_s_dn !~ <match-cn>) { return 403 "client
certificate unauthorized"; }``) and, in each location, the ``proxy_set_header ssl-client-cert /
ssl-client-verify / ssl-client-subject-dn / ssl-client-issuer-dn`` lines.

nginx refuses in ``ngx_http_process_request``, before any location: a certificate that failed
verification answers 400 "The SSL certificate error" (NGX_HTTPS_CERT_ERROR, 495), unless
``optional_no_ca`` tolerates the error; no certificate with ``on`` answers 400 "No required SSL
certificate was sent" (NGX_HTTPS_NO_CERT, 496). ``error_page 495 496 = <page>`` turns both
into a redirect to the page. A request whose Host names a server with verification other than
the one its TLS handshake was made for (SNI) is refused 421 there too ("client attempted to
request the server name different from the one that was negotiated").

Python's ``ssl`` module has no verify callback: a presented certificate that fails verification
aborts the handshake (the driver never gets a request), so ``verify`` here is ``SUCCESS``,
``NONE`` or a ``FAILED:`` the driver found after the handshake (a chain deeper than
``auth-tls-verify-depth``). Nothing here imports ``ssl``: the driver (proxy/_server.py, with
``ingresslib._tls.client_cert_of``) builds the :class:`ClientCert`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import regex as _regex

from .._goparse import parse_bool, parse_int
from .._normalize import ascii_lower, normalize_host

__all__ = ["AUTH_TLS_ANNOTATIONS", "CLIENT_CERT_HEADERS", "CLIENT_CERT_NAMES", "ClientCert",
           "ClientCertAuth", "AuthTLS", "parse_auth_tls", "server_auths", "auth_for_host",
           "refusal", "upstream_lines", "HostAuths", "NO_CERT", "CERT_ERROR", "MISDIRECTED",
           "UNAUTHORIZED"]

AUTH_TLS_ANNOTATIONS = frozenset({
    "auth-tls-secret", "auth-tls-verify-client", "auth-tls-verify-depth",
    "auth-tls-error-page", "auth-tls-pass-certificate-to-upstream", "auth-tls-match-cn"})

#: The request headers nginx.tmpl sets from the handshake (lower-case). A client's own
#: headers of these names never reach a backend (ingresslib drops them on every route, see
#: README's divergences): a client must not be able to say ``ssl-client-verify: SUCCESS``.
CLIENT_CERT_HEADERS = frozenset({b"ssl-client-cert", b"ssl-client-verify",
                                 b"ssl-client-subject-dn", b"ssl-client-issuer-dn"})


def _spellings(name: bytes) -> set[bytes]:
    """``name`` with each of its ``-`` as ``-`` or ``_``."""
    out = {b""}
    for i, part in enumerate(name.split(b"-")):
        out = {o + sep + part for o in out for sep in ((b"",) if i == 0 else (b"-", b"_"))}
    return out


#: Those names in every spelling a client may send them in (``_`` for ``-``: the same CGI/WSGI
#: name): never taken from the client (``_build_upstream_headers``), one set test per header.
CLIENT_CERT_NAMES = frozenset(s for n in CLIENT_CERT_HEADERS for s in _spellings(n))

#: nginx's answers (ngx_http_special_response.c): 495 and 496 are sent as 400 with these
#: bodies' titles; 421 for a Host whose server verifies another way than the handshake's.
CERT_ERROR = (400, b"The SSL certificate error")
NO_CERT = (400, b"No required SSL certificate was sent")
MISDIRECTED = (421, b"Misdirected Request")
#: A host whose client certificate authentication cannot be used (``ClientCertAuth.denied``).
DENIED = (503, b"Service Unavailable")
#: match-cn's ``return 403 "client certificate unauthorized";``.
UNAUTHORIZED = (403, b"client certificate unauthorized")

_VERIFY = ("on", "off", "optional", "optional_no_ca")
# authtls/main.go: redirectRegex, the validator of auth-tls-error-page.
_ERROR_PAGE = re.compile(r"((https?://)?[A-Za-z0-9\-.]*(:\d+)?/[A-Za-z0-9\-.]*)?", re.ASCII)
# parser.BasicCharsRegex (auth-tls-secret's validator, spaces removed first).
_BASIC_CHARS = re.compile(r"[/\-._~a-zA-Z0-9:]*", re.ASCII)
#: The longest match-cn's regex may run on one subject DN (the Ingress author's regex, as
#: ``rewrite-target``'s: _annotations.REWRITE_TIMEOUT); past it the request is refused 403.
MATCH_TIMEOUT = 0.05


@dataclass(frozen=True, slots=True)
class ClientCert:
    """What the TLS driver learnt in a connection's handshake, given to
    ``Proxy.connection(client_cert=...)``.

    ``key``: the :attr:`ClientCertAuth.key` of the configuration the handshake verified with
    (its CA, CRL, mode and depth); ``verify``: nginx's ``$ssl_client_verify`` (``SUCCESS``,
    ``NONE``, ``FAILED:<reason>``); ``subject_dn`` / ``issuer_dn``: ``$ssl_client_s_dn`` /
    ``$ssl_client_i_dn`` (RFC 2253 form, empty without a certificate); ``escaped_pem``:
    ``$ssl_client_escaped_cert`` (the PEM, URL-encoded)."""

    key: str
    verify: str = "NONE"
    subject_dn: str = ""
    issuer_dn: str = ""
    escaped_pem: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class ClientCertAuth:
    """A server's (host's) client certificate authentication, as nginx.tmpl writes it."""

    #: ``namespace/name`` of the Secret, and the Ingress that set it (``namespace/name``).
    secret: str
    ingress: str
    ca: bytes
    crl: bytes | None
    verify_client: str = "on"
    depth: int = 1
    error_page: str | None = None
    pass_cert: bool = False
    match_cn: Any = None   # a compiled ``regex`` pattern, or None
    match_cn_text: str = ""
    #: Why the host's first Ingress with ``auth-tls-secret`` cannot be used (no such Secret, no
    #: ``ca.crt``...): every request of the host answers 503 (fails closed), until a usable
    #: configuration replaces it; None: usable.
    denied: str | None = None
    #: What a handshake made with this configuration is known by (:attr:`ClientCert.key`): a
    #: digest of the CA, CRL, mode and depth (derived; compared per request).
    key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        h = hashlib.sha256(self.ca)
        h.update(b"\0" + (self.crl or b"") + b"\0" + self.verify_client.encode()
                 + b"\0%d" % self.depth)
        object.__setattr__(self, "key", h.hexdigest()[:32])

    @property
    def verifies(self) -> bool:
        """The handshake asks for a certificate (every mode but ``off``; not when denied)."""
        return self.verify_client != "off" and self.denied is None


@dataclass(frozen=True, slots=True)
class AuthTLS:
    """:func:`parse_auth_tls`'s answer: the configuration (None: none, or denied), the reason
    the Ingress's locations are denied (503, ingress-nginx's LocationDenied), and the warnings
    as ``(annotation key, message)``."""

    config: ClientCertAuth | None
    denied: str | None
    warnings: tuple[tuple[str, str], ...]
    #: The annotation (full key) ``denied`` is about.
    denied_key: str = ""


def _secrets_by_ref(secrets: Any) -> Mapping[tuple[str, str], Any]:
    if secrets is None:
        return {}
    if isinstance(secrets, Mapping):
        return secrets
    return {(s.metadata.namespace, s.metadata.name): s for s in secrets}


def parse_auth_tls(annotations: Mapping[str, str], prefix: str, namespace: str | None,
                   ingress: str, secrets: Iterable[Any] | Mapping[tuple[str, str], Any] | None,
                   *, resolve: bool = True) -> AuthTLS | None:
    """The ``auth-tls-*`` annotations of one Ingress, as authtls/main.go ``Parse`` reads them;
    None when ``auth-tls-secret`` is not set (the others are then read by nothing, as there).

    ``secrets``: the Secrets (an iterable of ``Secret``, or a mapping by (namespace, name));
    with ``resolve=False`` (``ingresslib check`` without Secrets) the Secret is not looked up
    and no configuration is returned, only the values checked. Denied (503 on the Ingress's
    routes, as ingress-nginx's ``LocationDenied``): a secret reference that is not
    ``namespace/name`` of the Ingress's own namespace, a Secret not found, without ``ca.crt``
    or whose ``ca.crt`` / ``ca.crl`` cannot be read, and the values ingress-nginx's validators
    refuse (an invalid ``auth-tls-match-cn``, ``auth-tls-error-page`` or
    ``auth-tls-pass-certificate-to-upstream``: ingress-nginx drops the whole Ingress there).
    ``auth-tls-verify-client`` and ``auth-tls-verify-depth`` fall back to ``on`` and 1."""
    raw_secret = annotations.get(prefix + "auth-tls-secret")
    if raw_secret is None:
        return None
    warnings: list[tuple[str, str]] = []
    own = namespace or "default"

    def deny(key: str, why: str) -> AuthTLS:
        return AuthTLS(None, f"annotation {prefix}{key}: {why}", tuple(warnings), prefix + key)

    ref = "".join(raw_secret.split())
    if not _BASIC_CHARS.fullmatch(ref):
        return deny("auth-tls-secret", f"invalid value {raw_secret!r}")
    ns, sep, name = ref.partition("/")
    if not sep or "/" in name or not name:
        return deny("auth-tls-secret", f"{raw_secret!r} is not \"namespace/name\" "
                    "(ingress-nginx: \"invalid format (namespace/name)\")")
    if ns != own:
        return deny("auth-tls-secret", f"{raw_secret!r}: a Secret of another namespace "
                    "(ingress-nginx: \"cross namespace secrets are not supported\" by default)")
    verify = annotations.get(prefix + "auth-tls-verify-client", "on")
    if verify not in _VERIFY:
        warnings.append((prefix + "auth-tls-verify-client",
                         f"invalid value {verify!r} (on, off, optional or optional_no_ca); "
                         "using the default on"))
        verify = "on"
    depth = 1
    raw_depth = annotations.get(prefix + "auth-tls-verify-depth")
    if raw_depth is not None:
        n = parse_int(raw_depth)
        if n is None or n < 0:
            warnings.append((prefix + "auth-tls-verify-depth",
                             f"invalid value {raw_depth!r} (a whole number); using the "
                             "default 1"))
        elif n > 0:
            depth = n
    error_page: str | None = None
    raw_page = annotations.get(prefix + "auth-tls-error-page")
    if raw_page is not None and raw_page != "":
        if not _ERROR_PAGE.fullmatch(raw_page):
            return deny("auth-tls-error-page", f"invalid value {raw_page!r} (a URL or path "
                        "of letters, digits, '-' and '.'; ingress-nginx refuses the Ingress)")
        error_page = raw_page
    pass_cert = False
    raw_pass = annotations.get(prefix + "auth-tls-pass-certificate-to-upstream")
    if raw_pass is not None:
        b = parse_bool(raw_pass)
        if b is None:
            return deny("auth-tls-pass-certificate-to-upstream",
                        f"invalid value {raw_pass!r} (\"true\" or \"false\"; ingress-nginx "
                        "refuses the Ingress)")
        pass_cert = b
    match_cn = None
    raw_cn = annotations.get(prefix + "auth-tls-match-cn")
    if raw_cn is not None and raw_cn != "":
        # parser.CommonNameAnnotationValidator: "CN=" then a valid regex.
        if not raw_cn.startswith("CN="):
            return deny("auth-tls-match-cn", f"invalid value {raw_cn!r}: missing prefix "
                        "'CN=' (ingress-nginx refuses the Ingress)")
        try:
            match_cn = _regex.compile(pcre_braces(raw_cn))
        except _regex.error as e:
            return deny("auth-tls-match-cn", f"invalid value {raw_cn!r}: not a valid regex "
                        f"({e}; ingress-nginx refuses the Ingress)")
    if not resolve:
        return AuthTLS(None, None, tuple(warnings))
    secret = _secrets_by_ref(secrets).get((ns, name))
    if secret is None:
        return deny("auth-tls-secret", f"Secret {ns}/{name} not found (ingress-nginx: "
                    "\"error obtaining certificate\")")
    ca = secret.get_bytes("ca.crt")
    if not ca:
        # ingress-nginx serves a TLS Secret without ca.crt with mutual authentication
        # disabled (a V(3) log line only); ingresslib denies (README's divergences).
        return deny("auth-tls-secret", f"Secret {ns}/{name} has no ca.crt: no client "
                    "certificate could be verified (ingress-nginx would serve the host "
                    "without client certificate authentication)")
    crl = secret.get_bytes("ca.crl") or None
    problem = _ca_problem(ca, crl)
    if problem is not None:
        return deny("auth-tls-secret", f"Secret {ns}/{name}: {problem}")
    return AuthTLS(ClientCertAuth(
        secret=f"{ns}/{name}", ingress=ingress, ca=ca, crl=crl, verify_client=verify,
        depth=depth, error_page=error_page, pass_cert=pass_cert, match_cn=match_cn,
        match_cn_text=raw_cn or ""), None, tuple(warnings))


_QUANTIFIER = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}", re.ASCII)


def pcre_braces(pattern: str) -> str:
    """``pattern`` with every ``{`` that does not open a ``{n}``, ``{n,}`` or ``{n,m}``
    quantifier escaped, outside character classes: a literal brace in PCRE (nginx's
    ``if ($ssl_client_s_dn !~ ...)``) and in Go's RE2 (the annotation's validator), where the
    ``regex`` module reads ``{e<=2}`` as fuzzy matching (``CN=(admin){e<=2}`` would admit
    ``CN=xxmin``) and ``{,3}`` as a quantifier.

    >>> pcre_braces("CN=(admin){e<=2}[{]x{2,}")
    'CN=(admin)\\\\{e<=2}[{]x{2,}'
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i:i + 2])
            i += 2
            continue
        i += 1
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            out.append(c)
            if pattern[i:i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i:i + 1] == "]":   # a "]" first in a class is literal
                out.append("]")
                i += 1
            continue
        elif c == "{" and not _QUANTIFIER.match(pattern, i - 1):
            out.append("\\{")
            continue
        out.append(c)
    return "".join(out)


#: A PEM block as Go's ``pem.Decode`` finds one (_tls._PEM_BEGIN; END looked up after it).
_PEM_BLOCK = re.compile(rb"^-----BEGIN ([^\r\n-]{0,200})-----[ \t]*\r?\n", re.M)


def _pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, DER)`` of the PEM blocks of ``data`` whose base64 decodes (_tls._pem_blocks,
    without ``ssl``: the core imports no TLS module)."""
    import base64
    import binascii

    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while True:
        m = _PEM_BLOCK.search(data, pos)
        if m is None:
            return out
        end = data.find(b"-----END " + m.group(1) + b"-----", m.end())
        if end < 0:
            return out
        pos = end + 1
        try:
            out.append((m.group(1), base64.b64decode(b"".join(data[m.end():end].split()),
                                                     validate=True)))
        except (binascii.Error, ValueError):
            continue


def _ca_problem(ca: bytes, crl: bytes | None) -> str | None:
    """Why ingress-nginx refuses a ``ca.crt`` (every PEM block a certificate, at least one:
    ssl.CheckCACert) or its ``ca.crl`` (the first PEM block an ``X509 CRL`` that parses:
    ssl.ConfigureCRL), or None."""
    from cryptography import x509

    blocks = _pem_blocks(ca)
    for i, (kind, der) in enumerate(blocks):
        try:
            x509.load_der_x509_certificate(der)
        except ValueError:
            return (f"ca.crt: its PEM block {i + 1} ({kind.decode('ascii', 'replace')!r}) "
                    "is not a readable certificate (ingress-nginx: \"error decoding CA "
                    "certificate/s\")")
    if not blocks:
        return "ca.crt holds no readable PEM certificate"
    if not crl:
        return None
    first = _pem_blocks(crl)[:1]
    if not first or first[0][0] != b"X509 CRL":
        return "ca.crl: its first PEM block is not an '-----BEGIN X509 CRL-----' one"
    try:
        x509.load_der_x509_crl(first[0][1])
    except ValueError:
        return "ca.crl: its X509 CRL block is not a readable CRL"
    return None


def server_auths(ordered: Iterable[Any], secrets: Any, prefix: str
                 ) -> tuple[dict[str, ClientCertAuth | None], list[tuple[str, str, str]]]:
    """Every rule host of the non-canary Ingresses ``ordered`` (oldest first), normalised,
    with the client certificate authentication its server takes: the first Ingress's that
    sets a usable one for the host (controller.go ``createServers``), else None; and the
    problems of the Secrets named, as ``(Ingress namespace/name, annotation key, message)``.

    An Ingress whose ``auth-tls-*`` cannot be used (:func:`parse_auth_tls` denies it) leaves,
    on a host no older Ingress configured, a denied configuration: every request of the host
    answers 503 (ingress-nginx denies that Ingress's locations and serves the host's others
    without client certificates; here the host fails closed, and a Secret created or repaired
    later is seen at the next update, the route table being kept).

    A ``server-alias`` name of such a host (as the route table keeps it) takes the host's
    configuration too (``_add_aliases``): nginx's server block holds both names."""
    by_ref = _secrets_by_ref(secrets)
    out: dict[str, ClientCertAuth | None] = {}
    problems: list[tuple[str, str, str]] = []
    ordered = list(ordered)   # (read twice: the rule hosts, then the aliases)
    for ing in ordered:
        meta = ing.metadata
        config: ClientCertAuth | None = None
        if prefix + "auth-tls-secret" in meta.annotations:
            ref = f"{meta.namespace}/{meta.name}"
            parsed = parse_auth_tls(meta.annotations, prefix, meta.namespace, ref, by_ref)
            assert parsed is not None
            config = parsed.config
            if parsed.denied is not None:
                config = ClientCertAuth(meta.annotations[prefix + "auth-tls-secret"], ref, b"",
                                        None, denied=parsed.denied)
                values_only = parse_auth_tls(meta.annotations, prefix, meta.namespace, ref,
                                             None, resolve=False)
                if values_only is not None and values_only.denied is None:
                    # (A refused value is said with the route's warnings already.)
                    problems.append((ref, parsed.denied_key, parsed.denied))
        for rule in ing.spec.rules:
            if not rule.host:
                continue
            host = _host_key(rule.host)
            have = out.get(host)
            if have is None:
                out[host] = config   # (None too: the host is known, without client auth)
            elif have.denied is not None and config is not None and config.denied is None:
                out[host] = config   # a usable configuration replaces a denied one
    _add_aliases(out, ordered)
    return out, problems


def _host_key(host: str) -> str:
    """A rule host as requests are compared with it (``normalize_host``): ASCII-only lower
    case (RFC 4343; ``str.lower()`` made a U+212A (Kelvin sign) ``.test`` host the key of
    ``k.test``, and left a U+00C0 one unmatched by its own requests), one trailing dot
    stripped (SEMANTICS §4.1)."""
    host = ascii_lower(host)
    return host[:-1] if host.endswith(".") else host


def _add_aliases(out: dict[str, ClientCertAuth | None], ordered: Iterable[Any]) -> None:
    """Give every ``server-alias`` name the configuration of the server it names: nginx.tmpl
    writes the aliases into that server's ``server_name``, so its ``ssl_verify_client`` (and
    the refusals of ``ngx_http_process_request``) hold for a request by an alias as for one by
    the host. The aliases are the route table's (``_table.server_aliases``: the first
    Ingress's per host, none that is a rule host), so an alias that routes is one that is
    verified; an alias of a server without it (or of the host-less rules' server) is known
    without one, so that no ``*.`` host's configuration is taken for it (nginx: an exact
    ``server_name`` before a wildcard one)."""
    from .._table import alias_servers

    for alias, server in alias_servers(ordered):
        auth = out.get(_host_key(server)) if server is not None else None
        out.setdefault(_host_key(alias), auth)


class HostAuths:
    """For a front end that verifies no client certificate (IngressASGI): whether a request's
    host names a server with client certificate authentication (``auth-tls-*``, usable or
    not, by its host or a ``server-alias``: :func:`server_auths` over the served non-canary
    Ingresses of the router's table), so that every request of such a host is refused (503)
    rather than served unverified, whichever Ingress routes its path. Derived once per route
    table (the router's ``table``; a router without one: no host)."""

    __slots__ = ("table", "auths")

    def __init__(self) -> None:
        #: The route table ``auths`` was worked out for, and its hosts' configurations (a
        #: caller may test ``auths`` itself, for the same table, before calling ``auth_for``:
        #: the plain request of a cluster without auth-tls makes no call).
        self.table: Any = object()
        self.auths: Mapping[str, ClientCertAuth | None] = {}

    def auth_for(self, router: Any, host: str | None) -> ClientCertAuth | None:
        """The configuration of the server answering ``host`` (as received: any case, a
        ``:port``, a trailing dot) under ``router``'s current table; None: none."""
        table = getattr(router, "table", None)
        if table is not self.table:
            self.auths = _table_auths(table)
            self.table = table
        auths = self.auths
        if not auths or not host:
            return None
        return auth_for_host(auths, normalize_host(host) or "")


def _table_auths(table: Any) -> Mapping[str, ClientCertAuth | None]:
    """:func:`server_auths` of a route table's served Ingresses (oldest first), canaries
    apart; the Secrets are not read (whether a host has a configuration does not depend on
    them: a missing one is a denied configuration)."""
    served = getattr(table, "served", None)
    if not served:
        return {}
    from .._table import _split_canaries
    from ._annotations import PREFIX

    mains = _split_canaries(served)[0]
    if not any(PREFIX + "auth-tls-secret" in ing.metadata.annotations for ing in mains):
        return {}
    return server_auths(mains, None, PREFIX)[0]


def auth_for_host(auths: Mapping[str, ClientCertAuth | None], host: str
                  ) -> ClientCertAuth | None:
    """The configuration of the server answering ``host`` (normalised): its own name's, else,
    when no rule names it, the ``*.`` name one label up (nginx's server_name lookup)."""
    if host in auths:
        return auths[host]
    dot = host.find(".")
    if dot > 0:
        return auths.get("*" + host[dot:])
    return None


def refusal(auth: ClientCertAuth, cert: ClientCert | None, tls: bool, path: str
            ) -> tuple[int, bytes, bytes | None] | None:
    """nginx's answer to a request of a server with ``auth`` before any location, or None:
    ``(status, reason text, Location or None)``.

    On a TLS connection (``cert``: what its handshake found; None: it verified nothing):
    a handshake made with another configuration than the host's (another SNI name) 421; a
    certificate that failed verification 400 (``optional_no_ca`` tolerates none of the
    driver's failures: a chain too deep is not an "optional" error in
    ``ngx_ssl_verify_error_optional``); no certificate with ``on`` 400; either 400 becomes a
    302 to ``auth-tls-error-page`` (``error_page 495 496 = <page>``; a page that is this very
    path stays 400, where nginx serves it internally). Then, on any connection (plain HTTP
    too: ``$ssl_client_s_dn`` is empty there), ``auth-tls-match-cn`` 403."""
    if auth.denied is not None:
        return DENIED + (None,)
    if tls and auth.verifies:
        if cert is None or cert.key != auth.key:
            return MISDIRECTED + (None,)
        answer: tuple[int, bytes] | None = None
        if cert.verify.startswith("FAILED"):
            answer = CERT_ERROR
        elif auth.verify_client == "on" and cert.verify != "SUCCESS":
            answer = NO_CERT
        if answer is not None:
            page = auth.error_page
            if page and page != path:
                return (302, b"Found", page.encode("ascii"))
            return answer + (None,)
    if auth.match_cn is not None:
        dn = _dn(auth, cert, tls)
        try:
            hit = auth.match_cn.search(dn, timeout=MATCH_TIMEOUT) is not None
        except TimeoutError:
            hit = False
        if not hit:
            return UNAUTHORIZED + (None,)
    return None


def _dn(auth: ClientCertAuth, cert: ClientCert | None, tls: bool) -> str:
    if not tls or cert is None or cert.key != auth.key:
        return ""
    return cert.subject_dn


def upstream_lines(auth: ClientCertAuth, cert: ClientCert | None, tls: bool) -> list[bytes]:
    """nginx.tmpl's ``proxy_set_header ssl-client-*`` lines of a location of a server with
    ``auth``, as header lines for the upstream head. An empty value is not sent
    (``proxy_set_header`` with an empty value sends nothing): on plain HTTP none at all
    (``$ssl_client_verify`` is empty there), without a certificate ``ssl-client-verify: NONE``
    alone. A certificate verified for another configuration (another SNI name, with
    ``auth-tls-verify-client: off`` here) counts as none."""
    if not tls:
        return []
    if cert is None or cert.key != auth.key:
        return [b"ssl-client-verify: NONE\r\n"]
    out: list[bytes] = []
    if auth.pass_cert and cert.escaped_pem:
        out.append(b"ssl-client-cert: %s\r\n" % cert.escaped_pem.encode("ascii"))
    out.append(b"ssl-client-verify: %s\r\n" % _header_text(cert.verify))
    if cert.subject_dn:
        out.append(b"ssl-client-subject-dn: %s\r\n" % _header_text(cert.subject_dn))
    if cert.issuer_dn:
        out.append(b"ssl-client-issuer-dn: %s\r\n" % _header_text(cert.issuer_dn))
    return out


def _header_text(value: str) -> bytes:
    """A DN as a header value: UTF-8 (nginx prints the DN with ASN1_STRFLGS_RFC2253's
    escapes; a control character never reaches a header line here)."""
    return "".join(c if c >= " " and c != "\x7f" else f"\\{ord(c):02X}"
                   for c in value).encode("utf-8")
