"""``proxy-ssl-*``: how the proxy speaks TLS to a route's endpoints (``backend-protocol: HTTPS``,
or ``AUTO_HTTP`` over TLS), ingress-nginx's annotations/proxyssl and nginx's ``proxy_ssl_*``.

ingress-nginx internal/ingress/annotations/proxyssl (``Parse``): everything hangs on
``proxy-ssl-secret`` (``namespace/name``; k8s.ParseNameNS: "invalid format (namespace/name)",
a Secret of another namespace: "cross namespace secrets are not supported", a Secret the store
cannot read: "error obtaining certificate": each one ``LocationDenied``, the location answers
503). Without it the other six are read by nothing (here: a warning each, ignored). With it:

* ``proxy-ssl-verify`` ``on``/``off`` (default off; anything else: off),
* ``proxy-ssl-verify-depth`` an integer, 0 or invalid: 1,
* ``proxy-ssl-name`` (default empty: nginx's own default, ``$proxy_host``),
* ``proxy-ssl-server-name`` ``on``/``off`` (default off: no SNI),
* ``proxy-ssl-protocols`` (validator ``^(TLSv1\\.2|TLSv1\\.3| )*$``, sorted; default
  ``TLSv1.2``),
* ``proxy-ssl-ciphers`` (validator ``^[A-Za-z0-9+:_\\-!]*$``; default ``DEFAULT``).

nginx.tmpl then writes, per location: "{{ if not (empty $location.ProxySSL.CAFileName) }}
proxy_ssl_trusted_certificate ...; proxy_ssl_ciphers ...; proxy_ssl_protocols ...;
proxy_ssl_verify ...; proxy_ssl_verify_depth ...; {{ end }}", "{{ if not (empty
$location.ProxySSL.ProxySSLName) }} proxy_ssl_name ...", "{{ if not (empty
$location.ProxySSL.ProxySSLServerName) }} proxy_ssl_server_name ...", "{{ if not (empty
$location.ProxySSL.PemFileName) }} proxy_ssl_certificate ...; proxy_ssl_certificate_key ...".
So: the Secret's ``ca.crt`` carries verify, depth, protocols and ciphers (without it nginx's
defaults hold: no verification, ``TLSv1.2 TLSv1.3``, ``DEFAULT``); its ``tls.crt`` /
``tls.key`` are the client certificate presented to the backend; a Secret with neither is
refused by the store ("contains no keypair or CA certificate": 503).

nginx's ``proxy_ssl_name`` defaults to ``$proxy_host``, the host of ``proxy_pass``, which
ingress-nginx writes as ``https://upstream_balancer``: with verification on and no
``proxy-ssl-name`` the backend's certificate is checked against ``upstream_balancer``
(kubernetes/ingress-nginx#4928), and with ``proxy-ssl-server-name: on`` that name is the SNI.
Reproduced (:data:`DEFAULT_NAME`), with a warning on the Ingress. nginx checks the name only
with verification on (ngx_http_upstream_ssl_handshake: "if (u->conf->ssl_verify) { ... if
(ngx_ssl_check_host(c, &u->ssl_name) != NGX_OK)"), with OpenSSL's ``X509_check_host``
(:func:`name_matches`), and sends SNI only with ``proxy_ssl_server_name on``, whatever
``proxy_ssl_verify`` says.

nginx.tmpl writes them in the server block too ("{{ if not (empty $server.ProxySSL.CAFileName)
}} ..."), from the host's first Ingress (oldest first) whose Secret has a ``ca.crt``
(controller.go ``createServers``), and nginx inherits each directive a location does not write:
:class:`ServerProxySSL`, :func:`_merge`. A TLS attempt with no ``proxy_ssl_*`` at all gets
nginx's defaults (:data:`NGINX_DEFAULT`: no SNI, ``proxy_ssl_server_name off``; nginx.tmpl's
http block writes none, only the external-auth location "proxy_ssl_server_name on").
The external-auth location (the global one's too) and a mirror's (``buildMirrorLocations``)
sit in that server block: they inherit its ``proxy_ssl_*`` (:func:`subrequest_tls`, in
``OpenUpstream.tls_config`` / ``Mirror.tls_config``), never their route's own location's. The
ConfigMap's ``proxy-ssl-location-only`` writes no server level at all (``createServers``:
"if !...ProxySSLLocationOnly { ... server.ProxySSL = anns.ProxySSL }";
``ProxySettings.proxy_ssl_location_only``: ``options_for`` attaches none).

The core decides per route (:class:`ProxySSL` in ``RouteOptions.proxy_ssl``, its server's
attached by ``RouteOptionsSource.options_for``; the Secret is
read again whenever the router's Secrets change) and hands the result to the driver in
``OpenUpstream.tls_config`` (:class:`UpstreamTLS`, frozen and hashable); ProxyServer builds
one ``SSLContext`` per distinct value (ingresslib/_upstream_tls.py ``client_context``: this
module, core, imports no ``ssl``) and keys its idle connections by it.
A failed handshake, name or depth check is a failed connect (nginx's ``error``: a 502, another
try per ``proxy-next-upstream``). IngressASGI has no backend TLS: the annotations change
nothing there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._goparse import parse_int

__all__ = ["PROXY_SSL_ANNOTATIONS", "DEFAULT_NAME", "UpstreamTLS", "UNUSABLE", "NGINX_DEFAULT",
           "ProxySSL", "ServerProxySSL", "HostProxySSL", "parse_proxy_ssl", "server_proxy_ssl",
           "with_server", "subrequest_tls", "auth_tls", "mirror_tls", "server_hostname",
           "peer_problem", "name_matches"]

PROXY_SSL_ANNOTATIONS = frozenset({
    "proxy-ssl-secret", "proxy-ssl-verify", "proxy-ssl-verify-depth", "proxy-ssl-name",
    "proxy-ssl-server-name", "proxy-ssl-protocols", "proxy-ssl-ciphers"})

#: nginx's ``proxy_ssl_name`` default, ``$proxy_host``: ingress-nginx's ``proxy_pass
#: https://upstream_balancer;``.
DEFAULT_NAME = "upstream_balancer"
#: proxyssl.go ``defaultProxySSLProtocols`` (the newest releases; older ones: "TLSv1 TLSv1.1
#: TLSv1.2"), written only with a ``ca.crt``.
DEFAULT_PROTOCOLS: tuple[str, ...] = ("TLSv1.2",)
#: nginx's own ``proxy_ssl_protocols`` default (1.23.4+), in force without a ``ca.crt``.
NGINX_PROTOCOLS: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
_ON_OFF = re.compile(r"on|off")
_PROTOCOLS = re.compile(r"(?:TLSv1\.2|TLSv1\.3| )*")
_CIPHERS = re.compile(r"[A-Za-z0-9+:_\-!]*")
_LABEL = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
#: ``proxy-ssl-name``: a DNS name (ingress-nginx's validator, ``ValidateServerName``, takes
#: a server name; nginx variables are refused) or an IP address.
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
_BASIC_CHARS = re.compile(r"[/\-._~a-zA-Z0-9:]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """How to speak TLS to an endpoint (``OpenUpstream.tls_config``): one value per distinct
    configuration; equal values share an ``SSLContext`` and idle connections."""

    #: ``proxy_ssl_verify``: the chain must lead to ``ca`` and name ``server_name``.
    verify: bool = False
    #: ``ca.crt`` (PEM): the trusted certificates (``proxy_ssl_trusted_certificate``).
    ca: bytes | None = None
    #: ``tls.crt`` / ``tls.key`` (PEM): the client certificate (``proxy_ssl_certificate``).
    cert: bytes | None = None
    key: bytes | None = None
    #: ``proxy_ssl_name``: the name checked (with ``verify``) and sent as SNI (with ``sni``).
    server_name: str = DEFAULT_NAME
    #: ``proxy_ssl_server_name``.
    sni: bool = False
    #: ``proxy_ssl_protocols``: ``TLSv1.2`` and/or ``TLSv1.3``.
    protocols: tuple[str, ...] = NGINX_PROTOCOLS
    #: ``proxy_ssl_ciphers`` (OpenSSL's list: TLS 1.2 and below).
    ciphers: str = "DEFAULT"
    #: ``proxy_ssl_verify_depth``: the most intermediate certificates between the backend's
    #: and the trusted one.
    depth: int = 1

    def __repr__(self) -> str:  # never the key
        return (f"UpstreamTLS(verify={self.verify}, ca={self.ca is not None}, "
                f"cert={self.cert is not None}, server_name={self.server_name!r}, "
                f"sni={self.sni}, protocols={self.protocols}, ciphers={self.ciphers!r}, "
                f"depth={self.depth})")


#: What an attempt gets when its route's Secret became unusable after the request was let in
#: (``ProxySSL.config`` denies it now): a configuration no driver can connect with
#: (verification without any CA), so that the connect fails rather than go unverified.
UNUSABLE = UpstreamTLS(verify=True, ca=None, server_name="")
#: nginx's own ``proxy_ssl_*`` defaults (no verification, no client certificate, no SNI:
#: ``proxy_ssl_server_name off``), what a TLS attempt of a route gets when neither its
#: location nor its server (host) writes any: nginx.tmpl's http block sets none of them (only
#: ``proxy_ssl_session_reuse on``), the external-auth location alone says
#: ``proxy_ssl_server_name on``.
NGINX_DEFAULT = UpstreamTLS()


@dataclass(frozen=True, slots=True)
class _Values:
    """The annotations' values, the Secret aside."""

    namespace: str
    name: str
    verify: bool
    depth: int
    server_name: str | None
    sni: bool
    protocols: tuple[str, ...]
    ciphers: str


@dataclass(frozen=True, slots=True)
class _Level:
    """One location's or server's ``proxy_ssl_*`` as nginx.tmpl writes them: the values and
    the Secret's ``ca.crt`` and ``tls.crt``/``tls.key`` pair (``values`` None: ingress-nginx's
    empty ``proxyssl.Config``, an Ingress without a usable ``proxy-ssl-secret``)."""

    values: _Values | None = None
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None


_EMPTY = _Level()


def _merge(own: _Level, server: _Level | None) -> UpstreamTLS:
    """What nginx runs for a location writing ``own`` in a server writing ``server``: a
    directive the location does not write is inherited from the server block (nginx's
    ``ngx_http_proxy_merge_loc_conf``, directive by directive), one neither writes keeps
    nginx's default.

    nginx.tmpl, location: the five of ``ca.crt`` (``proxy_ssl_trusted_certificate``,
    ``_ciphers``, ``_protocols``, ``_verify``, ``_verify_depth``) with a CA, ``proxy_ssl_name``
    when ``proxy-ssl-name`` is set, ``proxy_ssl_server_name`` whenever the location has a
    usable ``proxy-ssl-secret`` (proxyssl.go: "on" or "off", never empty), the client
    certificate with a pair. Server: the same five with a CA and, with a CA and a
    ``proxy-ssl-name``, ``proxy_ssl_name`` and ``proxy_ssl_server_name``; the client
    certificate with a pair, CA or not."""
    s = server if server is not None else _EMPTY
    base = own if own.ca is not None else s if s.ca is not None else None
    p, sv = own.values, s.values
    if p is not None and p.server_name:
        name = p.server_name
    elif s.ca is not None and sv is not None and sv.server_name:
        name = sv.server_name
    else:
        name = DEFAULT_NAME
    if p is not None:
        sni = p.sni
    elif s.ca is not None and sv is not None and sv.server_name:
        sni = sv.sni
    else:
        sni = False
    pair = own if own.cert is not None else s if s.cert is not None else _EMPTY
    if base is None or base.values is None:
        return UpstreamTLS(cert=pair.cert, key=pair.key, server_name=name, sni=sni)
    b = base.values
    return UpstreamTLS(verify=b.verify, ca=base.ca, cert=pair.cert, key=pair.key,
                       server_name=name, sni=sni, protocols=b.protocols, ciphers=b.ciphers,
                       depth=b.depth)


class ProxySSL:
    """One route's ``proxy-ssl-*``: :meth:`config` gives the ``UpstreamTLS`` (the Secret read
    when the router's Secrets change) or why the location is denied. ``server``: its host's
    server-level ``proxy_ssl_*`` (:class:`ServerProxySSL`), inherited where the route writes
    none (:func:`with_server`)."""

    __slots__ = ("values", "denied_reason", "server", "_secrets", "_source", "_result", "_warn",
                 "_where")

    def __init__(self, values: _Values | None, denied: str | None,
                 secrets: Callable[[], Any] | None, warn: Callable[[str], None] | None,
                 where: str, server: ServerProxySSL | None = None) -> None:
        self.values = values
        #: A denial known from the annotations alone (a bad reference): every request 503.
        self.denied_reason = denied
        self.server = server
        self._secrets = secrets
        self._source: Any = _UNSET
        self._result: tuple[UpstreamTLS | None, str | None] = (None, denied)
        self._warn = warn
        self._where = where

    def config(self) -> tuple[UpstreamTLS | None, str | None]:
        """``(tls, None)``, or ``(None, reason)`` when the location is denied (503)."""
        if self.denied_reason is not None:
            return None, self.denied_reason
        if self.values is None and self.server is None:
            return NGINX_DEFAULT, None
        source = self._secrets() if self._secrets is not None else None
        if source is not self._source:
            self._source = source
            own, reason = self._level(source)
            if reason is not None:
                self._result = (None, reason)
                if self._warn is not None:
                    from ._annotations import PREFIX, RouteWarning, annotation_field

                    self._warn(RouteWarning.on(self._where, reason,
                                               annotation_field(PREFIX + "proxy-ssl-secret")))
            else:
                server = self.server.level(source) if self.server is not None else None
                self._result = (_merge(own, server), None)
        return self._result

    def server_secret(self) -> str | None:
        """``namespace/name`` of the Secret the server block's ``proxy_ssl_*`` come from (the
        host's :class:`ServerProxySSL`), or None: none (explain's ``proxy_ssl``)."""
        if self.server is None:
            return None
        v = self.server.level(self._secrets() if self._secrets is not None else None).values
        return None if v is None else f"{v.namespace}/{v.name}"

    def _level(self, source: Any) -> tuple[_Level, str | None]:
        """The route's own :class:`_Level` (:data:`_EMPTY` without values), or why its
        Secret cannot be used."""
        if self.denied_reason is not None:
            return _EMPTY, self.denied_reason
        if self.values is None:
            return _EMPTY, None
        return self._resolve(source)

    def _resolve(self, source: Any) -> tuple[_Level, str | None]:
        v = self.values
        assert v is not None
        ref = f"{v.namespace}/{v.name}"
        if source is None:
            return _EMPTY, (f"proxy-ssl-secret {ref}: the router exposes no resources.secrets; "
                            "the routes answer 503")
        secret = None
        for s in source:
            meta = s.metadata
            if meta.name == v.name and (meta.namespace or "default") == v.namespace:
                secret = s
        if secret is None:
            return _EMPTY, (f"proxy-ssl-secret {ref}: no such Secret; the routes answer 503, as "
                            "ingress-nginx denies the location (\"error obtaining certificate\")")
        ca = secret.get_bytes("ca.crt") or None
        cert = secret.get_bytes("tls.crt") or None
        key = secret.get_bytes("tls.key") or None
        problem = _secret_problem(ca, cert, key)
        if problem is not None:
            return _EMPTY, f"proxy-ssl-secret {ref}: {problem}; the routes answer 503"
        pair = cert is not None and key is not None
        # nginx.tmpl writes verify, depth, protocols and ciphers only with a CA (``_merge``).
        return _Level(v, ca, cert if pair else None, key if pair else None), None


_UNSET = object()


def _secret_problem(ca: bytes | None, cert: bytes | None, key: bytes | None) -> str | None:
    """Why ingress-nginx's store refuses the Secret (store.go ``getPemCertificate``), or
    None: a keypair that does not load, a ``ca.crt`` that is no certificate, neither."""
    from ._clientcert import _ca_problem

    pair = cert is not None and key is not None
    if not pair and ca is None:
        return "the Secret holds no tls.crt/tls.key pair nor ca.crt (ingress-nginx: \"contains " \
               "no keypair or CA certificate\")"
    if pair:
        assert cert is not None and key is not None
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            leaf = x509.load_pem_x509_certificate(cert)
            private = serialization.load_pem_private_key(key, None)
        except (ValueError, TypeError) as e:
            return f"tls.crt/tls.key cannot be read ({e})"
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if leaf.public_key().public_bytes(enc, pub) != private.public_key().public_bytes(enc, pub):
            return "tls.key does not match tls.crt"
    if ca is not None:
        return _ca_problem(ca, None)
    return None


def parse_proxy_ssl(annotations: Mapping[str, str], prefix: str, namespace: str | None,
                    warn: Callable[[str, str], None], secrets: Callable[[], Any] | None,
                    secret_warn: Callable[[str], None] | None, where: str
                    ) -> ProxySSL | None:
    """The route's ``proxy-ssl-*`` (None: no ``proxy-ssl-secret``); ``warn(key, message)``
    for each value refused (the default used, as ingress-nginx)."""
    raw = annotations.get(prefix + "proxy-ssl-secret")
    if raw is None:
        for key in sorted(annotations):
            if key.startswith(prefix) and key[len(prefix):] in PROXY_SSL_ANNOTATIONS:
                warn(key, f"ignored without {prefix}proxy-ssl-secret (as in ingress-nginx)")
        return None
    own = namespace or "default"
    ref = raw.strip()
    ns, sep, name = ref.partition("/")
    denied: str | None = None
    if not _BASIC_CHARS.fullmatch(ref) or not sep or not ns or not name or "/" in name:
        denied = (f"annotation {prefix}proxy-ssl-secret: {raw!r} is not \"namespace/name\" "
                  "(ingress-nginx: \"invalid format (namespace/name)\"); the routes answer 503")
    elif ns != own:
        denied = (f"annotation {prefix}proxy-ssl-secret: {raw!r} is a Secret of another "
                  "namespace (ingress-nginx: \"cross namespace secrets are not supported\"); "
                  "the routes answer 503")
    if denied is not None:
        warn(prefix + "proxy-ssl-secret", denied.split(": ", 1)[1])
        return ProxySSL(None, denied, secrets, secret_warn, where)

    def get(short: str) -> str | None:
        return annotations.get(prefix + short)

    def on_off(short: str) -> bool:
        """An on/off annotation, off when absent; an invalid value warned, off."""
        value = get(short)
        if value is None:
            return False
        if _ON_OFF.fullmatch(value.strip()):
            return value.strip() == "on"
        warn(prefix + short, f"invalid value {value!r} (on or off); using the default off")
        return False

    verify = on_off("proxy-ssl-verify")
    depth = 1
    value = get("proxy-ssl-verify-depth")
    if value is not None:
        n = parse_int(value.strip())
        if n is None or n < 0:
            warn(prefix + "proxy-ssl-verify-depth", f"invalid value {value!r} (a whole "
                 "number); using the default 1")
        elif n > 0:
            depth = n  # proxyssl.go: "config.VerifyDepth == 0" -> 1
    server_name: str | None = None
    value = get("proxy-ssl-name")
    if value is not None and value.strip():
        v = value.strip()
        if _HOSTNAME.fullmatch(v) or _is_ip(v):
            server_name = v.rstrip(".") if not _is_ip(v) else v
        else:
            warn(prefix + "proxy-ssl-name", f"invalid value {value!r} (a server name); using "
                 f"the default ({DEFAULT_NAME}, nginx's $proxy_host)")
    sni = on_off("proxy-ssl-server-name")
    protocols = DEFAULT_PROTOCOLS
    value = get("proxy-ssl-protocols")
    if value is not None:
        if _PROTOCOLS.fullmatch(value.strip()):
            # proxyssl.go sortProtocols: the words, sorted; none: the default.
            protocols = tuple(sorted(set(value.split()))) or DEFAULT_PROTOCOLS
        else:
            warn(prefix + "proxy-ssl-protocols", f"invalid value {value!r} (TLSv1.2 and/or "
                 "TLSv1.3); using the default TLSv1.2")
    ciphers = "DEFAULT"
    value = get("proxy-ssl-ciphers")
    if value is not None and value.strip():
        c = value.strip()
        if not _CIPHERS.fullmatch(c):
            warn(prefix + "proxy-ssl-ciphers", f"invalid value {value!r}; using the default "
                 "DEFAULT")
        else:
            # A list selecting no cipher OpenSSL knows fails when the driver builds the
            # context (ingresslib/_upstream_tls.py): the connects fail (502) with a warning, where
            # nginx fails its configuration test ("SSL_CTX_set_cipher_list failed").
            ciphers = c
    if verify and server_name is not None and ":" in server_name:
        warn(prefix + "proxy-ssl-name", f"{server_name!r} is an IPv6 address: nginx cuts the "
             "name at its first ':' (ngx_http_upstream_ssl_name), so the backend's certificate "
             "never matches it; ingresslib fails these connects too (502)")
    if verify and server_name is None:
        warn(prefix + "proxy-ssl-verify", f"on without {prefix}proxy-ssl-name: the backend's "
             f"certificate is checked against the name {DEFAULT_NAME} (nginx's $proxy_host in "
             "ingress-nginx, kubernetes/ingress-nginx#4928), which it is unlikely to hold: "
             "set proxy-ssl-name")
    values = _Values(ns, name, verify, depth, server_name, sni, protocols, ciphers)
    out = ProxySSL(values, None, secrets, secret_warn, where)
    if secrets is not None:
        out.config()  # the Secret's problems said now (the server's log at start), not later
    return out


# ---------------------------------------------------------------- the server (host) level

class ServerProxySSL:
    """A server's (host's) ``proxy_ssl_*``: nginx.tmpl writes ``$server.ProxySSL`` in the
    server block, and controller.go ``createServers`` sets it, for each Ingress oldest first
    and each of its rules for the host, with "if server.ProxySSL.CAFileName == "" {
    server.ProxySSL = anns.ProxySSL }": the first Ingress whose Secret has a ``ca.crt`` wins
    for good; before one, each Ingress replaces the previous one's (an Ingress without a usable
    ``proxy-ssl-secret`` with an empty configuration), so without any CA it is the last
    Ingress's (its client certificate alone is written). ``candidates`` in that order (None:
    an Ingress without ``proxy-ssl-secret``); resolved again when the Secrets change."""

    __slots__ = ("candidates", "_source", "_level")

    def __init__(self, candidates: tuple[ProxySSL | None, ...]) -> None:
        self.candidates = candidates
        self._source: Any = _UNSET
        self._level = _EMPTY

    def level(self, source: Any) -> _Level:
        """The server block's :class:`_Level` under the Secrets ``source``."""
        if source is not self._source:
            self._source = source
            last = _EMPTY
            for c in self.candidates:
                # An unusable Secret: proxyssl.go returns "&Config{}" with its error.
                last = c._level(source)[0] if c is not None else _EMPTY
                if last.ca is not None:
                    break
            self._level = last
        return self._level


def server_proxy_ssl(served: Any, prefix: str) -> dict[str | None, ServerProxySSL]:
    """Per rule host as written (None: the host-less rules' server, ingress-nginx's ``_``) of
    the served Ingresses ``served`` (oldest first), its :class:`ServerProxySSL`; only hosts
    some Ingress of which has ``proxy-ssl-secret``. Canary Ingresses take no part (their
    ``proxy-ssl-*`` is ignored, ``parse_route_options``); a rule without ``http`` neither
    (controller.go: "if rule.HTTP == nil && host != defServerName { continue }")."""
    from .._table import _split_canaries

    mains = _split_canaries(served)[0]
    key = prefix + "proxy-ssl-secret"
    if not any(key in ing.metadata.annotations for ing in mains):
        return {}
    parsed: dict[int, ProxySSL | None] = {}
    hosts: dict[str | None, list[ProxySSL | None]] = {}
    for ing in mains:
        meta = ing.metadata
        if id(ing) not in parsed:
            # Its warnings are its routes' own (``parse_route_options``): none said here.
            parsed[id(ing)] = parse_proxy_ssl(
                meta.annotations, prefix, meta.namespace, lambda k, m: None, None, None,
                f"Ingress {meta.namespace or 'default'}/{meta.name}")
        for rule in ing.spec.rules:
            if rule.paths is None and rule.host:
                continue
            hosts.setdefault(rule.host or None, []).append(parsed[id(ing)])
    out: dict[str | None, ServerProxySSL] = {}
    for host, candidates in hosts.items():
        if any(c is not None for c in candidates):
            out[host] = ServerProxySSL(tuple(candidates))
    return out


def with_server(own: ProxySSL | None, server: ServerProxySSL,
                secrets: Callable[[], Any] | None) -> ProxySSL:
    """The route's ``proxy-ssl-*`` (``own``, None: none) inside its server's ``server``: a
    new :class:`ProxySSL` (``own`` may be shared) whose :meth:`ProxySSL.config` merges both
    (``_merge``)."""
    if own is None:
        return ProxySSL(None, None, secrets, None, "", server)
    return ProxySSL(own.values, own.denied_reason, own._secrets, own._warn, own._where, server)


def subrequest_tls(route: ProxySSL | None, host: str, sni: bool) -> UpstreamTLS | None:
    """The ``proxy_ssl_*`` of an internal location nginx.tmpl writes inside the host's server
    block, connecting over TLS to ``host`` (its URL's host, nginx's ``$proxy_host``): the
    external-auth location (``location = /_external-auth-...``, also the global one's), which
    writes only "proxy_ssl_server_name on" (``sni`` True), and a mirror's
    (``buildMirrorLocations``: ``location = /_mirror-...``), which writes none. Each inherits
    the server block's ``proxy_ssl_*`` (``route.server``; never its route's own location's): the
    trusted CA, verify, depth, protocols and ciphers with a ``ca.crt``, the name (and the SNI)
    with a ``proxy-ssl-name`` too, the client certificate; a name it does not write is
    ``host``. A server verifying its backends thus verifies the auth service and the mirror
    with the same CA (and name, when it writes one), as nginx does. None: the server block
    writes no ``proxy_ssl_*`` (none for the host, ``proxy-ssl-location-only``): the caller's
    own defaults. Cold path: an auth subrequest or a mirror over TLS of a host with one."""
    server = route.server if route is not None else None
    if server is None or route is None:
        return None
    level = server.level(route._secrets() if route._secrets is not None else None)
    v = level.values
    if v is None or (level.ca is None and level.cert is None):
        return None
    named = level.ca is not None and bool(v.server_name)
    name = v.server_name if named and v.server_name else host
    with_sni = sni or (named and v.sni)
    if level.ca is None:
        return UpstreamTLS(cert=level.cert, key=level.key, server_name=name, sni=with_sni)
    return UpstreamTLS(verify=v.verify, ca=level.ca, cert=level.cert, key=level.key,
                       server_name=name, sni=with_sni, protocols=v.protocols,
                       ciphers=v.ciphers, depth=v.depth)


def auth_tls(opts: Any, auth: Any) -> UpstreamTLS | None:
    """``OpenUpstream.tls_config`` of the auth subrequest of a route whose options are
    ``opts`` (``RouteOptions``) to ``auth`` (proxy/_extauth.py ``ExtAuth``): the server
    block's ``proxy_ssl_*`` for an ``https`` auth URL (:func:`subrequest_tls`), else None."""
    if not auth.tls or opts.proxy_ssl is None:
        return None
    return subrequest_tls(opts.proxy_ssl, auth.endpoint[0], True)


def mirror_tls(opts: Any) -> UpstreamTLS | None:
    """``Mirror.tls_config`` of a route whose options are ``opts`` (``RouteOptions``): the
    server block's ``proxy_ssl_*`` for an ``https`` mirror-target (:func:`subrequest_tls`;
    the mirror location writes no ``proxy_ssl_server_name``: the server's, else off), else
    None."""
    m = opts.mirror
    if m is None or not m.tls or opts.proxy_ssl is None:
        return None
    return subrequest_tls(opts.proxy_ssl, m.host, False)


class HostProxySSL:
    """:func:`server_proxy_ssl` of a router's table, derived once per table (the router's
    ``table``; ``table.served``, oldest first). Cold path: called once per ``Match``."""

    __slots__ = ("table", "servers")

    def __init__(self) -> None:
        self.table: Any = object()
        self.servers: dict[str | None, ServerProxySSL] = {}

    def for_host(self, router: Any, host: str | None) -> ServerProxySSL | None:
        """The server-level ``proxy_ssl_*`` of the rule host ``host`` (as written; None: the
        host-less rules'), or None: none."""
        table = getattr(router, "table", None)
        if table is not self.table:
            served = getattr(table, "served", None)
            self.servers = server_proxy_ssl(served, _prefix()) if served else {}
            self.table = table
        if not self.servers:
            return None
        return self.servers.get(host)


def _prefix() -> str:
    from ._annotations import PREFIX

    return PREFIX


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- the driver's side

def server_hostname(tls: UpstreamTLS) -> str | None:
    """The SNI to send (``proxy_ssl_server_name on``), else None. An IP address is never sent
    as SNI (RFC 6066; nginx: "if (ngx_inet_addr(...) != INADDR_NONE) ... skip")."""
    if not tls.sni or _is_ip(tls.server_name):
        return None
    return tls.server_name


def peer_problem(tls: UpstreamTLS, ssl_object: Any) -> str | None:
    """After a verified handshake: why nginx would refuse the backend (its certificate does
    not match ``server_name``, or its chain is longer than ``depth`` allows), or None."""
    if not tls.verify or ssl_object is None:
        return None
    # SSLObject.get_verified_chain (Python 3.13+), else the _ssl object's own (3.10+).
    chain_of = getattr(ssl_object, "get_verified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if chain_of is not None:
        chain = chain_of() or []
        # OpenSSL's verify depth: "the levels 0 .. depth + 1" (the end entity, the
        # intermediates, the trust anchor).
        if len(chain) > tls.depth + 2:
            return (f"the backend's certificate chain has {len(chain) - 2} intermediate "
                    f"certificates, more than proxy-ssl-verify-depth {tls.depth}")
    cert = ssl_object.getpeercert()
    if not cert or not name_matches(cert, tls.server_name):
        return f"the backend's certificate does not match {tls.server_name!r}"
    return None


def name_matches(cert: Mapping[str, Any], name: str) -> bool:
    """OpenSSL's ``X509_check_host`` with nginx's flags (none), as ngx_event_openssl.c
    ``ngx_ssl_check_host`` calls it ("X509_check_host(cert, (char *) name->data, name->len, 0,
    NULL)"), an address included (compared as text with the DNS names: never with IP
    subjectAltNames): the DNS names of subjectAltName, the subject's CNs only when the
    certificate names no DNS name (crypto/x509/v3_utl.c ``do_x509_check``). Compared as
    OpenSSL compares, byte for byte (``equal_nocase``: ASCII letters without case, nothing
    else folded: a ``K`` KELVIN SIGN is no ``k``; a NUL in the pattern never matches), with a
    ``*`` honoured only where ``valid_star`` allows one (:func:`_dns_match`). An empty name
    matches nothing ("if (name->len == 0) { goto failed; }"). A trailing dot of ``name`` is
    dropped (``proxy-ssl-name`` is read without it: ingresslib's choice). A name with a ``:``
    (an IPv6 ``proxy-ssl-name``) matches nothing: nginx's ``ngx_http_upstream_ssl_name`` cuts
    the name at its first ``:`` (a port, it assumes), so it checks ``""`` for ``::1`` or
    ``fe80`` for ``fe80::1``; ingresslib fails closed rather than check such a prefix."""
    if not name or ":" in name:
        return False
    host = name.rstrip(".").encode("utf-8", "surrogatepass")
    dns = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    if not dns:
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    dns.append(v)
    return any(_dns_match(str(p).encode("utf-8", "surrogatepass"), host) for p in dns)


def _equal_nocase(pattern: bytes, subject: bytes) -> bool:
    """v3_utl.c ``equal_nocase``: same length, ASCII letters compared without case (bytes'
    ``lower`` folds only those), a NUL in the pattern never equal."""
    return (len(pattern) == len(subject) and b"\0" not in pattern
            and pattern.lower() == subject.lower())


_LDH = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _valid_star(p: bytes) -> int:
    """v3_utl.c ``valid_star``: where the pattern's one legal ``*`` is, or -1 (the pattern is
    then compared literally): at the start or the end of the first label (no ``f*o``), not
    in an IDNA (``xn--``) label, the labels letters, digits and inner hyphens only, at least
    two dots after it."""
    star = -1
    start, hyphen, idna = True, False, False
    dots = 0
    n = len(p)
    for i, c in enumerate(p):
        if c == 0x2A:  # '*'
            at_start = start
            at_end = i == n - 1 or p[i + 1] == 0x2E
            if star >= 0 or idna or dots:
                return -1
            if not at_start and not at_end:
                return -1
            star = i
            start = False
        elif c in _ALNUM:
            if start and p[i:i + 4].lower() == b"xn--":
                idna = True
            hyphen = start = False
        elif c == 0x2E:  # '.'
            if hyphen or start:
                return -1
            start, hyphen, idna = True, False, False
            dots += 1
        elif c == 0x2D:  # '-'
            if start:
                return -1
            hyphen = True
        else:
            return -1
    if start or hyphen or dots < 2:
        return -1
    return star


def _dns_match(pattern: bytes, host: bytes) -> bool:
    """v3_utl.c ``equal_wildcard`` (the checked name never starts with a dot here)."""
    star = _valid_star(pattern)
    if star < 0:
        return _equal_nocase(pattern, host)
    prefix, suffix = pattern[:star], pattern[star + 1:]
    # wildcard_match
    if len(host) < len(prefix) + len(suffix):
        return False
    if not _equal_nocase(prefix, host[:len(prefix)]):
        return False
    end = len(host) - len(suffix)
    if not _equal_nocase(host[end:], suffix):
        return False
    middle = host[len(prefix):end]
    allow_idna = False
    if not prefix and suffix[:1] == b".":
        # The wildcard is the whole first label: it matches at least one character.
        if not middle:
            return False
        allow_idna = True
    if not allow_idna and host[:4].lower() == b"xn--":
        return False  # "IDNA labels cannot match partial wildcards"
    if middle == b"*":
        return True
    return all(c in _LDH for c in middle)
