"""``auth-type: basic``: nginx's ``auth_basic`` with the users of an ingress-nginx auth Secret.

ingress-nginx internal/ingress/annotations/auth/main.go ``Parse``: ``auth-secret`` is
``name`` or ``namespace/name`` ("if sns == "" { sns = ing.Namespace }"); a Secret that cannot
be read denies the location ("unexpected error reading secret %v": LocationDenied, 503);
``auth-secret-type`` is ``auth-file`` (default: the key ``auth`` holds an htpasswd file, "the
secret %v does not contain a key with value auth" otherwise) or ``auth-map`` (each key a user,
its value the hash); anything else denies ("invalid auth-secret-type in annotation, must be
'auth-file' or 'auth-map'"). ``auth-realm`` is the realm, empty when unset
("realm, _ := parser.GetStringAnnotation("auth-realm", ing)"). A Secret in another namespace
denies too: config.go's default ``AllowCrossNamespaceResources: false``.

nginx.tmpl then writes ``auth_basic "<realm>"; auth_basic_user_file <file>;`` and
``proxy_set_header Authorization "";``: the credentials are not sent to the backend. The
access module (allow/deny) runs before auth_basic in nginx's access phase (its handlers run in
the reverse order of module registration, ngx_http_access_module after
ngx_http_auth_basic_module), so a refused address gets 403 without a credentials prompt.

The Secret is read when the route first needs it and again whenever the router's Secrets
change (a new ``resources.secrets`` tuple), so a password change or a deleted Secret takes
effect without a restart, as ingress-nginx rewrites the file on a Secret update.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._htpasswd import supported, verify

__all__ = ["BasicAuth", "UNAUTHORIZED", "valid_realm"]

UNAUTHORIZED = 401
_DENIED = 503
#: ingress-nginx's validator of auth-realm: parser.CharsWithSpace, "^[/" + alphaNumericChars +
#: " ]*$" (alphaNumericChars = `\-\.\_\~a-zA-Z0-9\/:`).
_REALM = re.compile(r"[-._~a-zA-Z0-9/: ]*")
_CACHE_MAX = 4096
#: Keys the verdict cache (an HMAC of the Authorization value, so the cache holds no password).
_CACHE_KEY = os.urandom(32)


def valid_realm(value: str) -> bool:
    return _REALM.fullmatch(value) is not None


def parse_htpasswd(text: str) -> dict[str, str]:
    """user -> hash, from an htpasswd file as nginx reads it (ngx_http_auth_basic_handler):
    one ``user:hash`` per line, ``#`` starts a comment line, the hash ends at the end of the
    line or at a ``:`` (a trailing comment field); the first line of a user wins."""
    users: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        user, sep, rest = line.partition(":")
        if not sep:
            continue
        users.setdefault(user, rest.split(":", 1)[0])
    return users


class BasicAuth:
    """One route's basic authentication; ``check`` is called per request."""

    __slots__ = ("realm", "namespace", "name", "map_type", "_secrets", "_source", "_users",
                 "_reason", "_cache", "_warn_to", "_where", "challenge")

    def __init__(self, realm: str, namespace: str, name: str, map_type: bool,
                 secrets: Callable[[], Any], warn: Callable[[str], None] | None,
                 where: str) -> None:
        self.realm = realm
        self.namespace = namespace
        self.name = name
        self.map_type = map_type
        #: () -> the router's current Secrets (a tuple, replaced on every change).
        self._secrets = secrets
        self._source: Any = _UNSET
        self._users: dict[str, str] = {}
        self._reason: str | None = None
        self._cache: dict[bytes, tuple[int, str | None]] = {}
        #: Where the Secret's problems are reported (the proxy logs each once per table).
        self._warn_to = warn
        self._where = where
        #: The 401's ``WWW-Authenticate`` value (ngx_http_auth_basic_set_realm).
        self.challenge = b'Basic realm="%s"' % realm.encode("ascii")

    def load(self) -> None:
        """Read the Secret now if the router's Secrets changed since it was last read (so
        that its problems are logged at start, not at the first request)."""
        source = self._secrets()
        if source is not self._source:
            self._load(source)

    def check(self, authorization: bytes | None) -> tuple[int, str | None]:
        """``(0, user)`` when the credentials match a user of the Secret; ``(401, None)``
        when they are missing or wrong (or the user's hash is a format not verifiable here);
        ``(503, None)`` when the Secret cannot be used (the location is denied)."""
        source = self._secrets()
        if source is not self._source:
            self._load(source)
        if self._reason is not None:
            return _DENIED, None
        if not authorization:
            return UNAUTHORIZED, None
        key = hmac.new(_CACHE_KEY, authorization, hashlib.sha256).digest()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        verdict = self._verify(authorization)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = verdict
        return verdict

    def _verify(self, authorization: bytes) -> tuple[int, str | None]:
        # ngx_http_auth_basic_user: "Basic " (any case), then base64 of "user:password".
        scheme, _, encoded = authorization.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return UNAUTHORIZED, None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return UNAUTHORIZED, None
        user_b, sep, password = decoded.partition(b":")
        if not sep:
            return UNAUTHORIZED, None
        user = user_b.decode("utf-8", "surrogateescape")
        stored = self._users.get(user)
        if stored is None:
            return UNAUTHORIZED, None
        ok = verify(stored, password)
        return (0, user) if ok else (UNAUTHORIZED, None)

    def _load(self, source: Any) -> None:
        self._source = source
        self._cache = {}
        self._users = {}
        self._reason = None
        secret = None
        for s in source or ():
            meta = s.metadata
            if meta.name == self.name and (meta.namespace or "default") == self.namespace:
                secret = s
        key = f"{self.namespace}/{self.name}"
        if secret is None:
            self._deny(f"auth-secret {key}: no such Secret (serve --kubernetes reads only "
                       "Opaque auth Secrets, none with --no-auth-secrets); the routes answer "
                       "503, as ingress-nginx "
                       "denies the location (\"unexpected error reading secret\")")
            return
        if self.map_type:
            data = {k: _text(secret.get_bytes(k)) for k in
                    {*secret.data, *secret.string_data}}
            users = {u: h.strip() for u, h in data.items() if h is not None}
        else:
            raw = secret.get_bytes("auth")
            if raw is None:
                self._deny(f"auth-secret {key}: the Secret has no key \"auth\" (auth-secret-type "
                           "auth-file); the routes answer 503, as ingress-nginx denies the "
                           "location")
                return
            users = parse_htpasswd(raw.decode("utf-8", "surrogateescape"))
        for user, stored in users.items():
            if not supported(stored):
                self._warn(f"auth-secret {key}: user {user!r}: a password hash format "
                           "ingresslib cannot verify (supported: {PLAIN}, {SHA}, {SSHA}, "
                           "$apr1$, $1$, $5$, $6$); the user is refused")
        self._users = users

    def _deny(self, reason: str) -> None:
        self._reason = reason
        self._warn(reason)

    def _warn(self, message: str) -> None:
        if self._warn_to is not None:
            self._warn_to(f"{self._where}: {message}")


_UNSET = object()


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "surrogateescape")


def basic_auth_config(annotations: Mapping[str, str], prefix: str, namespace: str | None,
                      ) -> tuple[tuple[str, str, str, bool] | None, str | None, list[str]]:
    """The static part of ``auth-type: basic``: ``((realm, namespace, name, map_type), denial
    reason, warnings)``; the Secret itself is read per table by ``BasicAuth``."""
    warnings: list[str] = []
    secret = (annotations.get(prefix + "auth-secret") or "").strip()
    if not secret:
        return None, (f"annotation {prefix}auth-type: basic without {prefix}auth-secret "
                      "(ingress-nginx: \"error reading secret name from annotation\")"), warnings
    ns, slash, name = secret.rpartition("/")
    own = namespace or "default"
    if not slash:
        ns = own
    if not name or "/" in ns:
        return None, f"annotation {prefix}auth-secret {secret!r}: not \"name\" or " \
                     "\"namespace/name\"", warnings
    if ns != own:
        return None, (f"annotation {prefix}auth-secret {secret!r}: a Secret of another "
                      "namespace (ingress-nginx: \"cross namespace usage of secrets is not "
                      "allowed\" by default)"), warnings
    kind = (annotations.get(prefix + "auth-secret-type") or "auth-file").strip()
    if kind not in ("auth-file", "auth-map"):
        return None, (f"annotation {prefix}auth-secret-type {kind!r}: \"invalid "
                      "auth-secret-type in annotation, must be 'auth-file' or 'auth-map'\""), \
            warnings
    realm = annotations.get(prefix + "auth-realm") or ""
    if not valid_realm(realm):
        warnings.append(f"annotation {prefix}auth-realm: invalid realm {realm!r} (letters, "
                        "digits, spaces and -._~/: only, as ingress-nginx's validator); using "
                        "an empty realm")
        realm = ""
    return (realm, ns, name, kind == "auth-map"), None, warnings
