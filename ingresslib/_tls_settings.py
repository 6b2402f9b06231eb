"""The TLS termination settings of ingress-nginx's ConfigMap and ``ssl-ciphers`` annotations.

The ConfigMap keys (``ssl-protocols``, ``ssl-ciphers``, ``ssl-ecdh-curve``,
``ssl-session-tickets``, ``ssl-reject-handshake``, ``ssl-session-cache``,
``ssl-session-cache-size``, ``ssl-session-timeout``, ``ssl-dh-param``) are ``ProxySettings`` fields
(``ssl_protocols``...), read by :func:`tls_settings_of` into a :class:`TLSSettings` that every
context of the certificate store is built with (``_tls._new_context`` -> :func:`apply`). As
nginx.tmpl writes them in the ``http`` block (ingress-nginx
``rootfs/etc/nginx/template/nginx.tmpl``)::

    ssl_protocols {{ $cfg.SSLProtocols }};
    {{ if $cfg.SSLSessionCache }}
    ssl_session_cache builtin:1000 shared:SSL:{{ $cfg.SSLSessionCacheSize }};
    ssl_session_timeout {{ $cfg.SSLSessionTimeout }};
    {{ end }}
    ssl_session_tickets {{ if $cfg.SSLSessionTickets }}on{{ else }}off{{ end }};
    {{ if not (empty $cfg.SSLCiphers) }}
    ssl_ciphers '{{ $cfg.SSLCiphers }}';
    ssl_prefer_server_ciphers on;
    {{ end }}
    ssl_ecdh_curve {{ $cfg.SSLECDHCurve }};

with config.go ``NewDefault``'s defaults (``SSLProtocols: "TLSv1.2 TLSv1.3"``, the cipher list
below, ``SSLECDHCurve: "auto"``, ``SSLSessionCache: true``, ``SSLSessionCacheSize: "10m"``,
``SSLSessionTickets: false``, ``SSLSessionTimeout: "10m"``, ``SSLRejectHandshake: false``).
There is no ``ssl-prefer-server-ciphers`` ConfigMap key in ingress-nginx: the server's order is
preferred whenever ``ssl-ciphers`` is not empty (the template above), and ``ssl-ciphers: ""``
leaves nginx's own ``ssl_ciphers HIGH:!aNULL:!MD5`` with ``ssl_prefer_server_ciphers off``.

What Python's ``ssl`` module cannot set is warned about (:func:`config_warnings`), never
silently taken: ``ssl-session-cache: "false"`` (OpenSSL's session cache stays on),
``ssl-session-cache-size`` and ``ssl-session-timeout`` other than their defaults (OpenSSL's
cache of 20480 sessions, each kept 7200 s, TLS 1.2 and 1.3 alike), an ``ssl-ecdh-curve``
list (``SSLContext.set_ecdh_curve`` takes one curve: the first is offered alone), protocols this
OpenSSL cannot speak (not offered).

The annotations ``nginx.ingress.kubernetes.io/ssl-ciphers`` and ``ssl-prefer-server-ciphers``
are server-level (:func:`server_ciphers`): controller.go ``createServers`` keeps, per host, the
first Ingress's (oldest first) that sets each; nginx.tmpl writes ``ssl_ciphers`` /
``ssl_prefer_server_ciphers`` in that server block.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl
# (``ssl`` itself is imported where a context is built or a value checked: ProxySettings
# imports this module, and ``import ingresslib.proxy`` (the sans-IO core) loads no ssl.)

__all__ = ["TLSSettings", "DEFAULT_TLS", "INGRESS_NGINX_CIPHERS", "tls_settings_of", "apply",
           "parse_protocols", "parse_ciphers", "parse_ecdh_curve", "config_warnings",
           "server_ciphers", "ServerCiphers", "parse_dh_param", "default_server_ciphers"]

#: ingress-nginx's default ``ssl-ciphers`` (config.go ``sslCiphers``; TLS 1.2: TLS 1.3 keeps
#: OpenSSL's suites, as there). Python's own default also allows the CBC suites
#: (``ECDHE-*-AES*-SHA256/384``), which ingress-nginx does not offer. The DHE suites need DH
#: parameters (``ssl-dh-param``, as nginx's ``ssl_dhparam``): without them they are never
#: chosen.
INGRESS_NGINX_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
)
#: nginx's own ``ssl_ciphers`` default (ngx_http_ssl_module.c ``NGX_DEFAULT_CIPHERS``), what an
#: empty ``ssl-ciphers`` leaves (the template writes no ``ssl_ciphers`` then).
NGINX_DEFAULT_CIPHERS = "HIGH:!aNULL:!MD5"

#: nginx's ``ssl_protocols`` tokens (ngx_http_ssl_module.c ``ngx_http_ssl_protocols``), in
#: order, with the name of the ``ssl.TLSVersion`` each is.
_PROTOCOLS: dict[str, str] = {
    "sslv2": "SSLv3",   # (placeholder: never available, see _available)
    "sslv3": "SSLv3",
    "tlsv1": "TLSv1",
    "tlsv1.1": "TLSv1_1",
    "tlsv1.2": "TLSv1_2",
    "tlsv1.3": "TLSv1_3",
}
_SPELLING = {"sslv2": "SSLv2", "sslv3": "SSLv3", "tlsv1": "TLSv1", "tlsv1.1": "TLSv1.1",
             "tlsv1.2": "TLSv1.2", "tlsv1.3": "TLSv1.3"}
_ORDER = list(_PROTOCOLS)
#: OP_NO_* per version, for a set with a hole (nginx's ngx_ssl_create sets one per protocol
#: not listed).
_OP_NO = {
    "tlsv1": "OP_NO_TLSv1", "tlsv1.1": "OP_NO_TLSv1_1", "tlsv1.2": "OP_NO_TLSv1_2",
    "tlsv1.3": "OP_NO_TLSv1_3",
}


def _available(token: str) -> bool:
    """Whether this Python's OpenSSL speaks the protocol ``token`` (lowercase)."""
    import ssl

    if token == "sslv2":
        return False   # gone from OpenSSL since 1.1.0
    return bool(getattr(ssl, "HAS_" + _SPELLING[token].replace(".", "_"), False))


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """What a serving context is built with (:func:`apply`); the ConfigMap's values."""

    #: ``ssl-protocols``, lowercase tokens in nginx's order (``("tlsv1.2", "tlsv1.3")``).
    protocols: tuple[str, ...] = ("tlsv1.2", "tlsv1.3")
    #: ``ssl-ciphers``; "" : nginx's own default list, client's order.
    ciphers: str = INGRESS_NGINX_CIPHERS
    #: ``ssl-ecdh-curve``: "auto" (OpenSSL's groups) or a colon list.
    ecdh_curve: str = "auto"
    #: ``ssl-session-tickets``.
    session_tickets: bool = False
    #: ``ssl-reject-handshake``: a ClientHello naming no server (or none) is refused.
    reject_handshake: bool = False
    #: ``ssl-dh-param``: "namespace/name" of the Secret whose ``dhparam.pem`` holds the DH
    #: parameters of the DHE suites; "": none (those suites are never chosen).
    dh_param: str = ""
    #: That Secret's ``dhparam.pem`` as the certificate store found it usable at its last
    #: update (``_tls._dh_params``); b"": none loaded. Set by the store, never by the settings.
    dh_pem: bytes = b""


DEFAULT_TLS = TLSSettings()
#: ``ssl-protocols``' default, as written.
DEFAULT_PROTOCOLS = "TLSv1.2 TLSv1.3"


def tls_settings_of(settings: Any) -> TLSSettings:
    """The :class:`TLSSettings` of a ``ProxySettings`` (its ``ssl_*`` fields; an object without
    them: the defaults)."""
    protocols = getattr(settings, "ssl_protocols", None)
    return TLSSettings(
        protocols=DEFAULT_TLS.protocols if protocols is None else _tokens(protocols),
        ciphers=getattr(settings, "ssl_ciphers", DEFAULT_TLS.ciphers),
        ecdh_curve=getattr(settings, "ssl_ecdh_curve", DEFAULT_TLS.ecdh_curve),
        session_tickets=bool(getattr(settings, "ssl_session_tickets", False)),
        reject_handshake=bool(getattr(settings, "ssl_reject_handshake", False)),
        # (Stripped as check_settings reads it: ProxySettings(ssl_dh_param=" ns/name ").)
        dh_param=str(getattr(settings, "ssl_dh_param", "") or "").strip(),
    )


def _tokens(value: str) -> tuple[str, ...]:
    """The tokens of an ``ssl-protocols`` value, lowercase, each once, in nginx's order."""
    got = {t.lower() for t in value.split()}
    return tuple(t for t in _ORDER if t in got)


def parse_protocols(value: str) -> str:
    """Check an ``ssl-protocols`` value (nginx ``ssl_protocols``: tokens separated by spaces,
    matched ignoring case, ``ngx_conf_set_bitmask_slot``); returns it with spaces normalised.
    ValueError: an unknown token (nginx -t: "invalid value"), or none (nginx: "invalid number
    of arguments"), or none this OpenSSL can speak (every handshake would fail)."""
    import ssl

    tokens = value.split()
    if not tokens:
        raise ValueError("must name at least one protocol (SSLv2, SSLv3, TLSv1, TLSv1.1, "
                         "TLSv1.2, TLSv1.3)")
    for t in tokens:
        if t.lower() not in _PROTOCOLS:
            raise ValueError(f"unknown protocol {t!r}: nginx's ssl_protocols takes SSLv2, SSLv3, "
                             "TLSv1, TLSv1.1, TLSv1.2 and TLSv1.3")
    if not any(_available(t) for t in _tokens(value)):
        raise ValueError(f"this OpenSSL ({ssl.OPENSSL_VERSION}) speaks none of these "
                         "protocols: every handshake would fail")
    return " ".join(tokens)


def parse_dh_param(value: str) -> str:
    """Check an ``ssl-dh-param`` value: "" (none) or the ``"namespace/name"`` of a Secret, as
    ingress-nginx reads it (``n.store.GetSecret(cfg.SSLDHParam)``); ValueError otherwise."""
    text = value.strip()
    if text:
        from ._tls import parse_secret_ref

        parse_secret_ref(text)
    return text


def _check_cipher_list(value: str) -> None:
    """ValueError when OpenSSL refuses ``value`` as a cipher list (nginx: "SSL_CTX_set_cipher_list
    ... failed", nginx -t fails)."""
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(value)
    except ssl.SSLError:
        raise ValueError(f"OpenSSL selects no cipher from {value!r} (nginx refuses it: "
                         "SSL_CTX_set_cipher_list failed)") from None


def parse_ciphers(value: str) -> str:
    """Check an ``ssl-ciphers`` value: an OpenSSL cipher list that selects at least one cipher;
    "" (nginx's own default, see the module docstring) is allowed. As OpenSSL reads it: its
    separators are ``:``, spaces, ``,`` and ``;`` (``ssl_ciph.c`` ``ITEM_SEP``), and nginx.tmpl
    quotes the value (``ssl_ciphers '...'``), so ``"A B"`` is the list ``A:B`` there too."""
    if value == "":
        return value
    if "\0" in value:
        raise ValueError("must be one OpenSSL cipher list, such as "
                         "\"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\" "
                         "(no NUL character)")
    _check_cipher_list(value.strip())
    return value.strip()


#: The TLS group names of OpenSSL 3 (providers/common/capabilities.c ``TLS_GROUP_ENTRY``:
#: "secp256r1", its alias "P-256", "x25519"...), which nginx's ``ssl_ecdh_curve``
#: (SSL_CTX_set1_curves_list) takes, as the object short names Python's ``set_ecdh_curve``
#: (OBJ_sn2nid) takes instead.
_CURVE_ALIASES = {
    "secp192r1": "prime192v1", "P-192": "prime192v1", "P-224": "secp224r1",
    "secp256r1": "prime256v1", "P-256": "prime256v1", "P-384": "secp384r1",
    "P-521": "secp521r1", "x25519": "X25519", "x448": "X448",
}


def _curve(name: str) -> str:
    """``name`` (an ``ssl-ecdh-curve`` entry) as ``SSLContext.set_ecdh_curve`` takes it."""
    name = name.strip()
    return _CURVE_ALIASES.get(name, name)


def _curve_known(name: str) -> bool:
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ecdh_curve(_curve(name))
    except (ValueError, ssl.SSLError):
        return False
    return True


def parse_ecdh_curve(value: str) -> str:
    """Check an ``ssl-ecdh-curve`` value: ``auto`` or curve names separated by ``:`` (nginx
    ``ssl_ecdh_curve``, SSL_CTX_set1_curves_list), each one this OpenSSL knows (nginx -t fails
    on an unknown one)."""
    text = value.strip()
    if text == "auto":
        return text
    names = text.split(":")
    if not text or any(not n for n in names):
        raise ValueError('must be "auto" or curve names separated by ":", such as '
                         '"X25519:prime256v1"')
    for n in names:
        if not _curve_known(n):
            raise ValueError(f"unknown curve {n!r} for this OpenSSL (nginx refuses it: "
                             "SSL_CTX_set1_curves_list failed)")
    return text


def apply(ctx: ssl.SSLContext, tls: TLSSettings, ciphers: str | None = None,
          prefer: bool | None = None) -> None:
    """Set ``tls``'s protocols, ciphers, curve and tickets on a new serving ``ctx``.
    ``ciphers`` / ``prefer``: a server block's own ``ssl_ciphers`` / ``ssl_prefer_server_ciphers``
    (the annotations, :func:`server_ciphers`), None: the ConfigMap's."""
    import ssl

    listed = [t for t in tls.protocols if _available(t)] or ["tlsv1.2", "tlsv1.3"]
    low, high = listed[0], listed[-1]
    holes = [t for t in _ORDER[_ORDER.index(low):_ORDER.index(high)] if t not in listed]
    with warnings.catch_warnings():
        # (Python deprecates TLSv1/TLSv1.1 and the OP_NO_* options: the ConfigMap asked.)
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = getattr(ssl.TLSVersion, _PROTOCOLS[low])
        ctx.maximum_version = getattr(ssl.TLSVersion, _PROTOCOLS[high])
        # A set with a hole ("TLSv1 TLSv1.2"): as nginx's ngx_ssl_create, one SSL_OP_NO_* per
        # protocol not listed (what OpenSSL then does with a hole is OpenSSL's, as there).
        for t in holes:
            ctx.options |= getattr(ssl, _OP_NO[t])
    text = tls.ciphers if ciphers is None else ciphers
    # nginx.tmpl: "ssl_prefer_server_ciphers on" in the http block with any non-empty
    # ssl-ciphers (else nginx's default, off); a server block's annotation overrides it, and
    # one with only ``ssl-ciphers`` inherits the http block's.
    server_order = bool(tls.ciphers) if prefer is None else prefer
    ctx.set_ciphers(text or NGINX_DEFAULT_CIPHERS)
    if server_order:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.ecdh_curve.strip() != "auto":
        # Python's ssl sets one curve (SSL_CTX_set1_groups with one group): the list's first;
        # config_warnings says so.
        ctx.set_ecdh_curve(_curve(tls.ecdh_curve.split(":")[0]))
    if tls.session_tickets:
        ctx.options &= ~ssl.OP_NO_TICKET
    else:
        # ingress-nginx config.go NewDefault "SSLSessionTickets: false" (ssl_session_tickets
        # off): see _tls._new_context.
        ctx.options |= ssl.OP_NO_TICKET


def config_warnings(settings: Any, data: Mapping[str, Any], object: str) -> list[str]:
    """The ConfigMap warnings of the TLS keys ``data`` sets that Python's ``ssl`` cannot honour
    (module docstring)."""
    import ssl

    out: list[str] = []

    def say(key: str, text: str) -> None:
        out.append(f"{object}: data.{key}: {text}")

    if "ssl-protocols" in data:
        for t in _tokens(settings.ssl_protocols):
            if not _available(t):
                say("ssl-protocols", f"{_SPELLING[t]} is not available in this OpenSSL "
                    f"({ssl.OPENSSL_VERSION}): not offered")
    if "ssl-ecdh-curve" in data and ":" in settings.ssl_ecdh_curve:
        first, _, rest = settings.ssl_ecdh_curve.partition(":")
        say("ssl-ecdh-curve", f"Python's ssl module sets one curve: only {first} is offered "
            f"(not {rest.replace(':', ', ')})")
    if "ssl-session-cache" in data and not settings.ssl_session_cache:
        say("ssl-session-cache", "cannot be turned off from Python's ssl module: OpenSSL's "
            "session cache stays on")
    if "ssl-session-cache-size" in data and settings.ssl_session_cache_size != 10 * 1024 * 1024:
        say("ssl-session-cache-size", "not settable from Python's ssl module: OpenSSL's "
            "cache of 20480 sessions is used")
    if "ssl-session-timeout" in data and settings.ssl_session_timeout != 600.0:
        say("ssl-session-timeout", "not settable from Python's ssl module: OpenSSL's session "
            "lifetime is used (7200 s)")
    return out


# ------------------------------------------------------------------ the server-level annotations

#: sslcipher/main.go: "regexValidSSLCipher = regexp.MustCompile(`^[A-Za-z0-9!:+\-]*$`)".
_VALID_CIPHERS = re.compile(r"[A-Za-z0-9!:+\-]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class ServerCiphers:
    """A server's own ``ssl_ciphers`` / ``ssl_prefer_server_ciphers`` (None: the ConfigMap's)."""

    ciphers: str | None = None
    prefer: bool | None = None


def _annotation_ciphers(value: str) -> tuple[str | None, str | None]:
    """An ``ssl-ciphers`` annotation's value, or None and why when ingress-nginx refuses it
    (the regex: the annotation is dropped) or OpenSSL would (nginx -t fails and no
    configuration is applied: ingresslib ignores the annotation rather than the whole
    table)."""
    if not value:
        return None, None
    if _VALID_CIPHERS.fullmatch(value) is None:
        return None, (f"{value!r} is not a cipher list (letters, digits and !:+- only, as "
                      "ingress-nginx requires): ignored")
    try:
        _check_cipher_list(value)
    except ValueError as e:
        return None, f"{e}: ignored"
    return value, None


def server_ciphers(ordered: Iterable[Any], prefix: str,
                   problems: list[tuple[str, str, str]] | None = None
                   ) -> dict[str, ServerCiphers]:
    """Per rule host (normalised) of the non-canary Ingresses ``ordered`` (oldest first), the
    cipher settings of its server: controller.go ``createServers`` ("if server.SSLCiphers == ""
    && anns.SSLCipher.SSLCiphers != "" { server.SSLCiphers = anns.SSLCipher.SSLCiphers }", and
    likewise ``SSLPreferServerCiphers``): each the first Ingress's that sets it. Only hosts
    with one of them, and the ``server-alias`` names of their servers. ``problems``: where the
    values refused go, as ``(Ingress namespace/name, annotation key, message)``."""
    from ._goparse import parse_bool
    from ._tls_hosts import _norm

    kc, kp = prefix + "ssl-ciphers", prefix + "ssl-prefer-server-ciphers"
    out: dict[str, ServerCiphers] = {}
    ordered = list(ordered)   # (read twice: the rule hosts, then the aliases)
    for ing in ordered:
        anns = ing.metadata.annotations
        if kc not in anns and kp not in anns:
            continue
        ref = f"{ing.metadata.namespace}/{ing.metadata.name}"
        ciphers, why = _annotation_ciphers(anns[kc]) if kc in anns else (None, None)
        if why is not None and problems is not None:
            problems.append((ref, kc, why))
        prefer = parse_bool(anns[kp]) if kp in anns else None
        if prefer is None and kp in anns and problems is not None:
            problems.append((ref, kp, f"{anns[kp]!r} is not a boolean (\"true\" or "
                             "\"false\"): ignored"))
        if ciphers is None and prefer is None:
            continue
        for rule in ing.spec.rules:
            if not rule.host:
                continue
            host = _norm(rule.host)
            have = out.get(host, ServerCiphers())
            out[host] = ServerCiphers(have.ciphers if have.ciphers is not None else ciphers,
                                      have.prefer if have.prefer is not None else prefer)
    if out:
        _add_aliases(out, ordered)
    return out


def default_server_ciphers(ordered: Iterable[Any], prefix: str) -> ServerCiphers | None:
    """The cipher settings of the default server ``_`` from the non-canary Ingresses
    ``ordered`` (oldest first): a rule without ``host`` lands there (controller.go
    ``createServers``: "if host == "" { host = defServerName }", then the same first-Ingress
    rule as :func:`server_ciphers` for ``servers[host].SSLCiphers`` and
    ``SSLPreferServerCiphers``), and nginx.tmpl writes them in that server block, the one
    answering a ClientHello without SNI or naming no server. None: neither set. Values refused
    are reported by :func:`server_ciphers` (the same annotations)."""
    from ._goparse import parse_bool

    kc, kp = prefix + "ssl-ciphers", prefix + "ssl-prefer-server-ciphers"
    ciphers: str | None = None
    prefer: bool | None = None
    for ing in ordered:
        anns = ing.metadata.annotations
        if (kc not in anns and kp not in anns) or all(r.host for r in ing.spec.rules):
            continue
        if ciphers is None and kc in anns:
            ciphers = _annotation_ciphers(anns[kc])[0]
        if prefer is None and kp in anns:
            prefer = parse_bool(anns[kp])
    return None if ciphers is None and prefer is None else ServerCiphers(ciphers, prefer)


def _add_aliases(out: dict[str, ServerCiphers], ordered: Iterable[Any]) -> None:
    """Give every ``server-alias`` name of a server in ``out`` that server's settings:
    nginx.tmpl writes the aliases into the server's ``server_name``, next to its
    ``ssl_ciphers`` (the aliases the route table keeps, ``_table.server_aliases``; as
    ``proxy/_clientcert._add_aliases`` does for ``auth-tls-*``)."""
    from ._table import alias_servers
    from ._tls_hosts import _norm

    for alias, server in alias_servers(ordered):
        sc = out.get(_norm(server)) if server is not None else None
        if sc is not None:
            out.setdefault(_norm(alias), sc)


def check_settings(settings: Any) -> None:
    """``ProxySettings.__post_init__``'s check of its ``ssl_*`` fields: ValueError naming the
    field (the ConfigMap parsers' checks, for a keyword argument too)."""
    parsers: tuple[tuple[str, str, Callable[[str], object]], ...] = (
        ("ssl_protocols", DEFAULT_PROTOCOLS, parse_protocols),
        ("ssl_ciphers", INGRESS_NGINX_CIPHERS, parse_ciphers),
        ("ssl_ecdh_curve", "auto", parse_ecdh_curve),
        ("ssl_dh_param", "", parse_dh_param))
    for name, default, parse in parsers:
        value = getattr(settings, name)
        if value != default:  # (the defaults are valid: nothing to parse)
            try:
                parse(value)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
    for name in ("ssl_session_cache_size", "ssl_session_timeout"):
        value = getattr(settings, name)
        if not value >= 0:
            raise ValueError(f"{name}: {value!r} must be 0 or more")
