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
ngx_http_auth_basic_module), so a refused address gets 403 without a credentials prompt;
while the Secret cannot be used, the location is denied and every client gets 503
(``Access.status``).

The Secret is read when the route first needs it and again whenever the router's Secrets
change (a new ``resources.secrets`` tuple), so a password change or a deleted Secret takes
effect without a restart, as ingress-nginx rewrites the file on a Secret update.

nginx hashes the password on every request (ngx_http_auth_basic_crypt_handler: "rc =
ngx_crypt(r->pool, r->headers_in.passwd.data, passwd->data, &encrypted);"), in C and in one of
several workers. Here the hashing is pure Python (a ``$6$`` verification, 5,000 rounds:
~3 ms; benchmarks/bench_basicauth.py) and the proxy has one event loop, so the verdict of each
hashing verification is remembered (``_GOOD``, ``_BAD``): per (stored hash, password), not per
header or route, so that neither another spelling of the same credentials nor a reload nor a
route sharing the Secret hashes again, and a Secret update that changes the user's hash is
another key (the old verdict is never used again). Answers that need no hashing (no or
malformed credentials, an unknown user, a password over musl's length limits) are not
remembered: they cost less than the lookup, and a client sending them can evict nothing.
``BasicAuth.unsettled`` hands a hashing verification to a caller that runs it off the
event loop (a worker thread) before ``check``: the core's ``Offload`` action
(``_actions.access_job``), which ProxyServer runs with ``run_in_executor``, and IngressASGI
with ``asyncio.to_thread``; a driver of the core that did not opt in hashes in ``check``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._htpasswd import ROUNDS_LIMIT, hashes, rounds_over_limit, supported, verify

if TYPE_CHECKING:
    from ._annotations import RouteWarning

__all__ = ["BasicAuth", "UNAUTHORIZED", "valid_realm", "decode_credentials", "parse_htpasswd",
           "odd_lines", "lookup"]

UNAUTHORIZED = 401
_DENIED = 503
#: ingress-nginx's validator of auth-realm: parser.CharsWithSpace, "^[/" + alphaNumericChars +
#: " ]*$" (alphaNumericChars = `\-\.\_\~a-zA-Z0-9\/:`).
_REALM = re.compile(r"[-._~a-zA-Z0-9/: ]*")
#: The most verdicts remembered of each kind (good, refused): 4,096 keys of 32 bytes each.
_CACHE_MAX = 4096
#: Keys the verdict caches' BLAKE2b MAC of (stored hash, password): a process-random key, so
#: the caches hold no password nor any value comparable across processes.
_CACHE_KEY = os.urandom(32)


class _Verdicts:
    """Keys of one verdict, at most ``size``, the least recently used dropped first.

    No lock: a BasicAuth may be checked from several threads (an IngressASGI app served by
    several event loops), and every step here tolerates another thread's in between (each
    dict operation is atomic under the GIL). The worst an interleaving does is forget a key
    (the next request with those credentials hashes again) or hold one key over the bound
    for a moment; a verdict is never wrong, as a key names one (stored hash, password) pair,
    whose verdict never changes."""

    __slots__ = ("_keys", "_size")

    def __init__(self, size: int) -> None:
        self._keys: dict[bytes, None] = {}
        self._size = size

    def __contains__(self, key: bytes) -> bool:
        keys = self._keys
        try:
            del keys[key]
        except KeyError:
            return False  # a miss is followed by a hashing: the exception costs nothing here
        keys[key] = None  # the most recently used now (a dict keeps the insertion order)
        return True

    def add(self, key: bytes) -> None:
        keys = self._keys
        while len(keys) >= self._size:
            try:
                del keys[next(iter(keys))]
            except (KeyError, StopIteration, RuntimeError):
                pass  # another thread changed it meanwhile: look again
        keys[key] = None

    def __len__(self) -> int:
        return len(self._keys)


#: Verdicts of the hashing verifications, shared by every route, Secret and table of the
#: process: the credentials that matched, and those that did not (kept apart, so that a
#: client guessing passwords can never evict a user who logged in).
_GOOD, _BAD = _Verdicts(_CACHE_MAX), _Verdicts(_CACHE_MAX)


def _mac(stored: str) -> hashlib.blake2b:
    """The keyed BLAKE2b the caches' keys of passwords checked against ``stored`` continue
    (``.copy()``, ``.update(password)``, ``.digest()``): the hash's length first, so that no
    two (stored, password) pairs give the same input."""
    raw = stored.encode("utf-8", "surrogateescape")
    return hashlib.blake2b(len(raw).to_bytes(8, "big") + raw, key=_CACHE_KEY, digest_size=32)


def valid_realm(value: str) -> bool:
    return _REALM.fullmatch(value) is not None


def parse_htpasswd(text: str) -> dict[str, str]:
    """user -> hash, from an htpasswd file as nginx reads it (ngx_http_auth_basic_handler's
    state machine): lines end at LF only; a line starting with ``#`` or CR is skipped ("if
    (buf[i] == '#' || buf[i] == CR) { state = sw_skip;"); the user is the text before the
    first ``:``; the hash ends at the first CR, LF or ``:`` ("if (buf[i] == LF || buf[i] == CR
    || buf[i] == ':')"), so a CRLF file reads as an LF one and a trailing ``:comment`` field
    is dropped, and so is what follows a NUL. The first line of a user wins. (``str.splitlines``
    would also end lines at a lone CR, VT, FF, U+0085, U+2028...: users nginx never sees.)
    Exact for every user but those a line without ``:`` begins (``odd_lines``; ``lookup``)."""
    users: dict[str, str] = {}
    for line in text.split("\n"):
        if not line or line[0] in "#\r":
            continue
        user, sep, rest = line.partition(":")
        if not sep:
            continue
        users.setdefault(user, _HASH_END.split(rest, 1)[0])
    return users


def odd_lines(text: str) -> tuple[bytes, ...]:
    """The lines of an htpasswd file without ``:`` that nginx's reader compares with a user
    (not empty, not starting with ``#`` or CR), as bytes. Where one is a prefix of the
    header's user, nginx reads the file differently from ``parse_htpasswd``: the LF ending the
    line is compared with the user's next byte, so the line after it is skipped unread (or,
    for a user holding that LF, compared on with it); ``lookup`` reads it as nginx does."""
    return tuple(line.encode("utf-8", "surrogateescape") for line in text.split("\n")
                 if line and line[0] not in "#\r" and ":" not in line)


def lookup(data: bytes, user: bytes) -> bytes | None:
    """The hash nginx reads for ``user`` in the htpasswd file ``data``, else None: a port of
    ngx_http_auth_basic_handler's state machine (sw_login, sw_passwd, sw_skip). In sw_login a
    byte that differs from ``user:`` (``headers_in.user.data[login]``, the ':' that ended the
    user at ``login == user.len``) switches to sw_skip, which waits for the next LF, even
    when that byte was the LF ending the line; only at ``login == 0`` are ``#`` and CR a
    comment and LF an empty line. The hash ends at LF, CR or ':' (or the file's end), and at
    a NUL for its C-string readers."""
    wanted = user + b":"
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x0A:
            i += 1
            continue
        if c not in b"#\r":
            login = 0
            while i < n and data[i] == wanted[login]:
                i += 1
                login += 1
                if login == len(wanted):
                    return _HASH_END_BYTES.split(data[i:], 1)[0]
            if i >= n:
                return None
        # sw_skip from the byte after the one that differed (or the comment's first).
        end = data.find(b"\n", i + 1)
        if end < 0:
            return None
        i = end + 1
    return None


#: Where nginx's htpasswd reader ends a hash (LF is the line's end already); a NUL ends it
#: too for every reader of it (crypt(3)'s setting, ngx_crypt's salt and
#: ngx_http_auth_basic_crypt_handler's "ngx_strcmp(encrypted, passwd->data)" are C strings).
_HASH_END = re.compile("[\r:\0]")
_HASH_END_BYTES = re.compile(b"[\n\r:\0]")
#: ngx_decode_base64's alphabet (``basis64``: the standard one, no URL-safe characters).
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*")


def decode_credentials(authorization: bytes) -> tuple[bytes, bytes] | None:
    """``(user, password)`` from an ``Authorization`` value as nginx reads it
    (src/http/ngx_http_core_module.c ``ngx_http_auth_basic_user``), else None (nginx:
    NGX_DECLINED, a 401). "Basic " in any case ("ngx_strncasecmp(encoded.data, (u_char *)
    "Basic ", sizeof("Basic ") - 1)"), then spaces; the base64 is read by
    src/core/ngx_string.c ``ngx_decode_base64_internal``: the text before the first ``=``
    ("if (src->data[len] == '=') { break; }"; what follows is not looked at), every character
    of the standard alphabet, padding optional, a length of 4n+1 refused ("if (len % 4 == 1)
    { return NGX_ERROR; }"); the user is the text before the first ``:`` and must not be empty
    ("if (len == 0 || len == auth.len) { ... return NGX_DECLINED; }"). The one reading of the
    header: basic auth checks it, the access log names its user (``_headers.basic_auth_user``)."""
    value = authorization.strip(b" \t")
    if value[:6].lower() != b"basic ":
        return None
    encoded = value[6:].lstrip(b" ").split(b"=", 1)[0]
    if not encoded or len(encoded) % 4 == 1 or _BASE64.fullmatch(encoded) is None:
        return None
    decoded = base64.b64decode(encoded + b"=" * (-len(encoded) % 4))
    user, sep, password = decoded.partition(b":")
    if not user or not sep:
        return None
    return user, password


class _Unsettled:
    """A verification ``BasicAuth.check`` must hash: ``settle`` hashes and remembers it."""

    __slots__ = ("user", "stored", "password", "key")

    def __init__(self, user: str, stored: str, password: bytes, key: bytes) -> None:
        self.user, self.stored, self.password, self.key = user, stored, password, key

    def settle(self) -> tuple[int, str | None]:
        ok = verify(self.stored, self.password)
        if ok:
            _GOOD.add(self.key)
            return 0, self.user
        if ok is False:  # None: a hash not verifiable here, refused without hashing
            _BAD.add(self.key)
        return UNAUTHORIZED, None


class BasicAuth:
    """One route's basic authentication; ``check`` is called per request."""

    __slots__ = ("realm", "namespace", "name", "map_type", "_secrets", "_source", "_users",
                 "_odd", "_raw",
                 "_macs", "_reason", "_warn_to", "_where", "challenge")

    def __init__(self, realm: str, namespace: str, name: str, map_type: bool,
                 secrets: Callable[[], Any], warn: Callable[[str], None] | None,
                 where: str) -> None:
        self.realm = realm
        self.namespace = namespace
        self.name = name
        self.map_type = map_type
        #: () -> the router's current Secrets (a tuple, replaced on every change), or None
        #: when the router exposes none.
        self._secrets = secrets
        self._source: Any = _UNSET
        self._users: dict[str, str] = {}
        #: The file's ``odd_lines`` and, when there are any, its bytes (for ``lookup``).
        self._odd: tuple[bytes, ...] = ()
        self._raw = b""
        #: stored hash -> its ``_mac`` (made at its first check; the Secret's hashes at most).
        self._macs: dict[str, hashlib.blake2b] = {}
        self._reason: str | None = None
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
        step = self._step(authorization)
        return step.settle() if isinstance(step, _Unsettled) else step

    def unsettled(self, authorization: bytes | None) -> Callable[[], object] | None:
        """A function hashing ``authorization``'s password and remembering the verdict when
        ``check`` would hash now (no verdict remembered), else None. For a server that keeps
        its event loop free: run it in a worker thread, then ``check`` (measured: the loop
        keeps ~1/3 of its idle pace meanwhile, none while ``check`` hashes on it)."""
        step = self._step(authorization)
        return step.settle if isinstance(step, _Unsettled) else None

    def _step(self, authorization: bytes | None) -> tuple[int, str | None] | _Unsettled:
        source = self._secrets()
        if source is not self._source:
            self._load(source)
        if self._reason is not None:
            return _DENIED, None
        if not authorization:
            return UNAUTHORIZED, None
        credentials = decode_credentials(authorization)
        if credentials is None:
            return UNAUTHORIZED, None
        user = credentials[0].decode("utf-8", "surrogateescape")
        stored = self._users.get(user)
        if self._odd and any(credentials[0].startswith(line) for line in self._odd):
            found = lookup(self._raw, credentials[0])
            stored = None if found is None else found.decode("utf-8", "surrogateescape")
        if stored is None:
            return UNAUTHORIZED, None
        # nginx hands the password to ngx_crypt as a C string (ngx_http_auth_basic_user:
        # "auth.data[auth.len] = '\0';"; ngx_crypt_plain/_apr1/_sha/_ssha: "ngx_strlen(key)",
        # crypt(3) likewise): it ends at its first NUL byte.
        password = credentials[1].split(b"\0", 1)[0]
        if not hashes(stored, password):
            return (0, user) if verify(stored, password) else (UNAUTHORIZED, None)
        mac = self._macs.get(stored)
        if mac is None:
            mac = self._macs[stored] = _mac(stored)
        mac = mac.copy()
        mac.update(password)
        key = mac.digest()
        if key in _GOOD:
            return 0, user
        if key in _BAD:
            return UNAUTHORIZED, None
        return _Unsettled(user, stored, password, key)

    def _load(self, source: Any) -> None:
        self._source = source
        self._users = {}
        self._odd, self._raw = (), b""
        self._macs = {}
        self._reason = None
        secret = None
        for s in source or ():
            meta = s.metadata
            if meta.name == self.name and (meta.namespace or "default") == self.namespace:
                secret = s
        key = f"{self.namespace}/{self.name}"
        if source is None:
            self._deny(f"auth-secret {key}: the router exposes no resources.secrets (a "
                       "wrapper around the Router must hand `resources` on to it); the "
                       "routes answer 503")
            return
        if secret is None:
            self._deny(f"auth-secret {key}: no such Secret (serve --kubernetes reads only "
                       "the Opaque and kubernetes.io/tls Secrets Ingresses name, none with "
                       "--no-auth-secrets); the routes answer "
                       "503, as ingress-nginx "
                       "denies the location (\"unexpected error reading secret\")")
            return
        if self.map_type:
            # auth/main.go dumpSecretAuthMap writes "user:value\n" per key into the file nginx
            # reads; the same file is read here (keys sorted: Go's map order is random).
            lines = []
            for k in sorted({*secret.data, *secret.string_data}):
                value = _text(secret.get_bytes(k))
                if value is not None:
                    lines.append(f"{k}:{value}\n")
            text = "".join(lines)
        else:
            raw = secret.get_bytes("auth")
            if raw is None:
                self._deny(f"auth-secret {key}: the Secret has no key \"auth\" (auth-secret-type "
                           "auth-file); the routes answer 503, as ingress-nginx denies the "
                           "location")
                return
            text = raw.decode("utf-8", "surrogateescape")
        if self._digest_file(text, key):
            return  # auth-type: digest reads its htdigest file itself (proxy/_digest.py)
        users = parse_htpasswd(text)
        self._odd = odd_lines(text)
        if self._odd:
            self._raw = text.encode("utf-8", "surrogateescape")
        for user, stored in users.items():
            rounds = rounds_over_limit(stored)
            if rounds is not None:
                self._warn(f"auth-secret {key}: user {user!r}: a hash of {rounds:,} rounds, "
                           f"more than the {ROUNDS_LIMIT:,} ingresslib verifies (every "
                           "request with a new password for that user would hash for "
                           "seconds, holding the GIL); the user is refused (ingress-nginx's musl crypt "
                           "takes up to 9,999,999)")
            elif not supported(stored):
                self._warn(f"auth-secret {key}: user {user!r}: a password hash format "
                           "ingresslib cannot verify (supported: {PLAIN}, {SHA}, {SSHA}, "
                           "$apr1$, $1$, $5$, $6$, DES crypt); the user is refused")
        self._users = users

    def _digest_file(self, text: str, key: str) -> bool:
        """True when a subclass read the Secret's file ``text`` itself (``DigestAuth``)."""
        return False

    def _deny(self, reason: str) -> None:
        self._reason = reason
        self._warn(reason)

    def _warn(self, message: str) -> None:
        """``message`` (``auth-secret NS/NAME: ...``) on the route's Ingress and its
        ``auth-secret`` annotation (a ``RouteWarning``)."""
        if self._warn_to is not None:
            from ._annotations import PREFIX, RouteWarning, annotation_field

            self._warn_to(RouteWarning.on(self._where, message,
                                          annotation_field(PREFIX + "auth-secret")))


_UNSET = object()


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "surrogateescape")


def basic_auth_config(annotations: Mapping[str, str], prefix: str, namespace: str | None,
                      ) -> tuple[tuple[str, str, str, bool] | None, RouteWarning | None,
                                 list[tuple[str, str]]]:
    """The static part of ``auth-type: basic``: ``((realm, namespace, name, map_type), denial
    reason, warnings)``; the Secret itself is read per table by ``BasicAuth``. The reason is
    ``annotation KEY...`` (a ``RouteWarning`` on no object: its field is the annotation's,
    its message what follows ``KEY: ``), each warning a (annotation key, message) pair."""
    # Imported here: proxy/_annotations.py imports this module (through _access).
    from ._annotations import RouteWarning, annotation_field

    def refused(key: str, message: str, after: str = ": ") -> RouteWarning:
        # ``annotation KEY: message`` (its message: ``message``) or ``annotation KEY 'value':
        # ...`` (``after`` is the value and its colon; its message: the whole text).
        text = f"annotation {prefix}{key}{after}{message}"
        return RouteWarning(text, "", annotation_field(prefix + key),
                            message if after == ": " else text)

    warnings: list[tuple[str, str]] = []
    secret = (annotations.get(prefix + "auth-secret") or "").strip()
    if not secret:
        kind = (annotations.get(prefix + "auth-type") or "basic").strip()
        return None, refused("auth-type", f"{kind} without {prefix}auth-secret (ingress-nginx: "
                             "\"error reading secret name from annotation\")"), warnings
    ns, _, name = secret.rpartition("/")
    own = namespace or "default"
    if not ns:
        # client-go cache.SplitMetaNamespaceKey: "name" and "/name" both give namespace "",
        # then auth/main.go "if sns == "" { sns = ing.Namespace }".
        ns = own
    if not name or "/" in ns:
        return None, refused("auth-secret", "not \"name\" or \"namespace/name\"",
                             f" {secret!r}: "), warnings
    if ns != own:
        return None, refused("auth-secret", "a Secret of another namespace (ingress-nginx: "
                             "\"cross namespace usage of secrets is not allowed\" by default)",
                             f" {secret!r}: "), warnings
    kind = (annotations.get(prefix + "auth-secret-type") or "auth-file").strip()
    if kind not in ("auth-file", "auth-map"):
        return None, refused("auth-secret-type", "\"invalid auth-secret-type in annotation, "
                             "must be 'auth-file' or 'auth-map'\"", f" {kind!r}: "), warnings
    realm = annotations.get(prefix + "auth-realm") or ""
    if not valid_realm(realm):
        warnings.append((f"{prefix}auth-realm", f"invalid realm {realm!r} (letters, digits, "
                         "spaces and -._~/: only, as ingress-nginx's validator); using an "
                         "empty realm"))
        realm = ""
    # ingress-nginx validates the value as written, then parser.GetStringAnnotation trims it
    # (``normalizeString``: "strings.TrimSpace(line)" per line); a valid realm's only white
    # space is " ", so nginx gets ``auth_basic "Admin area";`` for " Admin area ".
    return (realm.strip(" "), ns, name, kind == "auth-map"), None, warnings
