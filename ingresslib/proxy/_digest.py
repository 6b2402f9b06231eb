"""``auth-type: digest``: the nginx-http-auth-digest module's ``auth_digest`` with the users of an
ingress-nginx auth Secret.

ingress-nginx internal/ingress/annotations/auth/main.go reads ``auth-type: digest`` as it reads
``basic`` (the same ``auth-secret``, ``auth-secret-type`` and ``auth-realm``; the Secret's file
written the same way: the ``auth`` key, or with ``auth-map`` a ``key:value`` line per key, so a
value ``realm:HA1`` gives the htdigest line), and nginx.tmpl writes ``auth_digest "<realm>";
auth_digest_user_file <file>;`` and ``proxy_set_header Authorization "";``. The module is
atomx/nginx-http-auth-digest (images/nginx/README.md), ngx_http_auth_digest_module.c:

- the file holds htdigest lines ``user:realm:HA1`` (HA1 = MD5(user:realm:password), 32 hex
  characters; ``ngx_http_auth_digest_verify_user``: a line matches when its user and realm equal
  the header's ``username`` and ``realm``, every matching line is tried);
- ``ngx_http_auth_digest_check_credentials`` reads ``Authorization: Digest`` name=value pairs
  (token or quoted string, separated by commas); username, qop, realm, nonce, nc, uri, cnonce
  and response are required; anything else (no header, another scheme, a malformed or
  incomplete one) gets the challenge (401), never an error;
- the header's ``realm`` must be the location's (the handler's ``ngx_strncmp(realm.data,
  auth_fields->realm.data, ...)``), its ``uri`` the request target (``r->unparsed_uri``), or the
  target without its query (.NET sends that; ``ngx_http_auth_digest_verify_hash``), else 401;
- the response is RFC 2617's with qop: MD5(HA1:nonce:nc:cnonce:qop:MD5(method:uri)), compared
  in full (here in constant time);
- the challenge is ``Digest algorithm="MD5", qop="auth", realm="<realm>", nonce="<nonce>"``,
  with ``, stale="true"`` when the nonce was right but too old or its ``nc`` out of range
  (``ngx_http_auth_digest_send_challenge``): the client then retries with the new nonce
  without asking its user again;
- nonces: one is valid ``auth_digest_timeout`` (60 s) from its challenge until its first use,
  then ``auth_digest_expires`` (10 s) more; ``nc`` (hex) below ``auth_digest_replays`` (20),
  each value accepted once per nonce (a replayed ``nc`` gets a fresh challenge, not stale).

ingresslib issues nonces without any table: ``<time><random><MAC>`` in hex, the MAC a keyed
BLAKE2b of the time and the random part under a per-process key, so a nonce it did not issue
(or a previous process did) is refused as the module refuses one not in its table. Only a
verified response adds an entry (nonce -> its first use and the ``nc`` values seen) to the
replay table, one per process as the module's shared-memory zone is one per nginx (every
location, route and reload shares it), bounded (``_TABLE_MAX``; entries leave once their nonce
can no longer be accepted; a full table refuses new nonces, stale, rather than forget one).
Times are the driver's monotonic clock (the core's ``now``, IngressASGI's ``limit_clock``).

Differences from the module, all failing closed: the scheme and parameter names are matched
exactly (the module compares only their first characters, ``ngx_strncasecmp(..., name.len)``:
``u=`` would set the username), the realm exactly (the module's compare stops at the shorter
one), ``qop`` must be ``auth`` (the module hashes whatever qop the client sent, with an HA2
that never covers the body); an empty ``auth-realm`` denies the location (503): the module is
then off ("if (realm.len == 0 ...) return NGX_DECLINED"), which serves it without
authentication.

Evasion (the module's ``auth_digest_maxtries`` 5, ``auth_digest_evasion_time`` 300 s;
``ngx_http_auth_digest_evading`` and ``ngx_http_auth_digest_evasion_tracking``): the handler
first asks whether the client address is evading, and then answers 401 without any challenge
(no ``WWW-Authenticate``: the client cannot even retry with a new nonce), valid credentials or
not. A failure is a request whose header was read (every required field, the location's realm,
a nonce of the issued form: the module's ``nonce.len != 16`` is a malformed header, answered
with a challenge and not counted) and that no line of the file admitted: a wrong user,
password, ``uri`` or ``qop``, a nonce not issued here, a replayed ``nc``, a stale nonce or an
``nc`` out of range (the module counts these too: with the right password they answer
``stale="true"``, which tells the password apart). A failure after the window's end (``now >
drop time``) restarts the count at 1, else adds 1; each sets the drop time ``now + 300``;
evading is ``count >= 5 and now < drop time`` (so 300 s from the fifth failure; the refused
requests do not extend it). A success forgets the address (the module's ``failcount = 0,
drop_time = now``). Keyed by the client address alone (the module's ``r->connection->
sockaddr``: after realip, the address the access rules see; not the user), IPv4 and IPv6
apart but for an IPv4-mapped IPv6 address, which is its IPv4 one (as the access rules take
it; the module's sockaddr compare keeps them apart); a request without one (a Unix socket
peer) is not tracked, as the module skips other families. The table is the process's, as
the replay table (the module keeps it in the same zone), bounded (``_EVASION_MAX``): entries
whose drop time passed leave first; when every entry is live a new address is not tracked
(the module: "auth_digest ran out of shm space", the address untracked), the tracked ones
keep their count.

On success the module adds ``Authentication-Info: qop="auth", rspauth="<hex>",
cnonce="<cnonce>", nc=<nc>`` to the response headers (``ngx_http_auth_digest_verify_hash``,
rspauth = MD5(HA1:nonce:nc:cnonce:qop:MD5(":" uri)), RFC 2617 3.2.3 with an empty method; no
``nextnonce``): ``verify`` gives it as ``(0, value)``, and the drivers add it to every answer
to that request (the proxied response, or a later local one: it is in nginx's
``headers_out``). Here a ``"`` or ``\\`` of the cnonce is sent as a quoted pair (the module
writes them bare: a ``"`` ends the quoted string early), and a cnonce with a control character
(CR, LF...: a quoted pair admits one) gets no header at all (the module would write it bare).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from ._basicauth import UNAUTHORIZED, BasicAuth

__all__ = ["DigestAuth", "parse_digest", "digest_without_realm", "asgi_request", "TIMEOUT",
           "EXPIRES", "REPLAYS", "MAXTRIES", "EVASION_TIME"]

#: The module's defaults (ngx_http_auth_digest_merge_loc_conf; ingress-nginx sets none).
TIMEOUT, EXPIRES, REPLAYS = 60, 10, 20
#: ``auth_digest_maxtries`` and ``auth_digest_evasion_time`` (the same merge_loc_conf).
MAXTRIES, EVASION_TIME = 5, 300
_DENIED = 503
#: The most nonces the replay table holds (the module: its 4 MB shared-memory zone).
_TABLE_MAX = 65536
#: The most addresses the evasion table tracks (the same zone in the module).
_EVASION_MAX = 65536
#: The per-process key of the nonces' MAC.
_KEY = os.urandom(32)
_REQUIRED = ("username", "qop", "realm", "nonce", "nc", "uri", "cnonce", "response")

# RFC 7230 tchar (the module's ``token_char`` table).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = re.compile(rb"[ \t\r\n]*(" + _TOKEN + rb") +")
# A quoted string: no CTL but in a quoted pair (the module: "ch < 0x20 || ch == 0x7f" is an
# error; "\\" takes the next byte when it is ASCII).
_PARAM = re.compile(rb"(" + _TOKEN + rb")=(?:(" + _TOKEN + rb')|"((?:[^"\\\x00-\x1f\x7f]|'
                    rb'\\[\x00-\x7f])*)")')
_SEP = re.compile(rb"[ \t\r\n]*,[ \t\r\n,]*")
_END = re.compile(rb"[ \t\r\n,]*\Z")
_PAIR = re.compile(rb"\\(.)", re.S)
_HEX = re.compile(rb"[0-9a-fA-F]+")
#: A control character but HTAB: never in a response header value (``_info``).
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def parse_digest(authorization: bytes) -> dict[str, bytes] | None:
    """The parameters of an ``Authorization: Digest`` value (lower-case names, quoted values
    unescaped, the last of a repeated name), else None: another scheme, a malformed value, or
    one of the required parameters missing or empty."""
    m = _SCHEME.match(authorization)
    if m is None or m.group(1).lower() != b"digest":
        return None
    fields: dict[str, bytes] = {}
    pos = m.end()
    while True:
        p = _PARAM.match(authorization, pos)
        if p is None:
            return None
        token, quoted = p.group(2), p.group(3)
        fields[p.group(1).decode("ascii").lower()] = (
            token if token is not None else _PAIR.sub(rb"\1", quoted))
        pos = p.end()
        if _END.match(authorization, pos):
            break
        s = _SEP.match(authorization, pos)
        if s is None:
            return None
        pos = s.end()
    if not all(fields.get(name) for name in _REQUIRED):
        return None
    return fields


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).hexdigest().encode("ascii")


def _mac(stamp: bytes) -> bytes:
    return hashlib.blake2b(stamp, key=_KEY, digest_size=16).hexdigest().encode("ascii")


def new_nonce(now: float) -> bytes:
    """A nonce issued at ``now``: 16 hex digits of the time (seconds, two's complement), 16 of
    randomness (two challenges of one second differ, so their ``nc`` never collide), 32 of
    MAC."""
    stamp = b"%016x%s" % (math.floor(now) & 0xFFFFFFFFFFFFFFFF, os.urandom(8).hex().encode("ascii"))
    return stamp + _mac(stamp)


def _issued(nonce: bytes) -> int | None:
    """When ``nonce`` was issued (``new_nonce``'s seconds), or None when this process did not
    issue it."""
    if len(nonce) != 64 or not hmac.compare_digest(_mac(nonce[:32]), nonce[32:]):
        return None
    t = int(nonce[:16], 16)
    return t - (1 << 64) if t >> 63 else t


class _Replays:
    """nonce -> (first use, drop time, the ``nc`` values used): the module's rbtree of nonces,
    filled at a nonce's first verified use rather than at its challenge (so a client that never
    authenticates adds nothing). Locked: an IngressASGI app may be served by several threads."""

    __slots__ = ("_nonces", "_lock")

    def __init__(self) -> None:
        self._nonces: dict[bytes, tuple[float, float, set[int]]] = {}
        self._lock = threading.Lock()

    def use(self, nonce: bytes, issued: int, nc: int, now: float) -> int:
        """0 when ``nc`` of ``nonce`` is accepted now (and remembered); 1 when it was used
        already (a replay); 2 when the nonce is stale (expired, or the table is full)."""
        with self._lock:
            entry = self._nonces.get(nonce)
            if entry is None:
                if now >= issued + TIMEOUT:
                    return 2
                self._drop_oldest(now)
                if len(self._nonces) >= _TABLE_MAX:
                    self._prune(now)
                    if len(self._nonces) >= _TABLE_MAX:
                        return 2
                # Kept while the nonce could still be accepted as unused (``issued + TIMEOUT``)
                # or as used (``now + EXPIRES``).
                self._nonces[nonce] = (now, max(issued + TIMEOUT, now + EXPIRES), {0, nc})
                return 0
            first, _, used = entry
            if now >= first + EXPIRES:
                return 2
            if nc in used:
                return 1
            used.add(nc)
            return 0

    def _drop_oldest(self, now: float) -> None:
        """Forget the oldest entries whose nonce can no longer be accepted (their order is
        nearly that of their drop times: each is at most ``TIMEOUT`` out), so that the table
        holds about the last minute's nonces, not ``_TABLE_MAX`` old ones."""
        nonces = self._nonces
        while nonces:
            nonce = next(iter(nonces))
            if nonces[nonce][1] > now:
                return
            del nonces[nonce]

    def _prune(self, now: float) -> None:
        for nonce in [n for n, (_, drop, _) in self._nonces.items() if drop <= now]:
            del self._nonces[nonce]

    def __len__(self) -> int:
        return len(self._nonces)


#: One table for the process, as the module's one zone (see the module docstring).
_REPLAYS = _Replays()


def _address(client_ip: str | None) -> Any:
    """The evasion table's key of ``client_ip`` (an address object: ``::1`` and ``0::1`` are
    one, IPv4 and IPv6 apart as the module's ``sockaddr`` compare, an IPv4-mapped one as
    its IPv4 address), or None: no address (a
    Unix socket peer) or not one, untracked (the module: "skipping evasive tactics for this
    source address")."""
    if not client_ip:
        return None
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    # An IPv4-mapped IPv6 address (a dual-stack listener's ``::ffff:a.b.c.d`` peer) is its
    # IPv4 client, as the access rules and the trusted ranges take it (``_access``,
    # ``_headers.TrustPolicy``; nginx's ngx_cidr_match): the module's sockaddr compare keeps
    # them apart, which gave one client twice the tries through two listeners.
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr if mapped is None else mapped


class _Evasion:
    """address -> (failures, drop time): the module's evasion rbtree (see the module
    docstring). Ordered by the last failure (re-inserted on each), so by drop time: the
    expired ones leave from the front. Locked, as ``_Replays``."""

    __slots__ = ("_fails", "_lock")

    def __init__(self) -> None:
        self._fails: dict[Any, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def evading(self, client_ip: str | None, now: float) -> bool:
        """ngx_http_auth_digest_evading: ``MAXTRIES`` failures or more and the drop time not
        reached."""
        if not self._fails:
            return False
        entry = self._fails.get(_address(client_ip))
        return entry is not None and entry[0] >= MAXTRIES and now < entry[1]

    def failed(self, client_ip: str | None, now: float) -> None:
        """ngx_http_auth_digest_evasion_tracking with a failure."""
        key = _address(client_ip)
        if key is None:
            return
        with self._lock:
            fails = self._fails
            entry = fails.pop(key, None)
            if entry is None:
                while fails:
                    oldest = next(iter(fails))
                    if fails[oldest][1] > now:
                        break
                    del fails[oldest]
                if len(fails) >= _EVASION_MAX:
                    return  # every entry live: this address is not tracked (the module's)
                count = 1
            else:
                count = 1 if now > entry[1] else entry[0] + 1
            fails[key] = (count, now + EVASION_TIME)

    def succeeded(self, client_ip: str | None) -> None:
        """ngx_http_auth_digest_evasion_tracking with a success: the count is forgotten."""
        if self._fails:
            key = _address(client_ip)
            with self._lock:
                self._fails.pop(key, None)

    def __len__(self) -> int:
        return len(self._fails)


#: One table for the process, as ``_REPLAYS``.
_EVASION = _Evasion()


class DigestAuth(BasicAuth):
    """One route's digest authentication. The Secret is found, read, re-read on a change and
    refused as ``BasicAuth`` does (the same annotations, the same 503s); ``verify`` is the
    per-request check. ``check`` (no request at hand) never admits: 503 while the Secret
    cannot be used, else 401."""

    __slots__ = ("_digest_users",)

    def __init__(self, realm: str, namespace: str, name: str, map_type: bool,
                 secrets: Callable[[], Any], warn: Callable[[str], None] | None,
                 where: str) -> None:
        super().__init__(realm, namespace, name, map_type, secrets, warn, where)
        #: (user, realm) -> the HA1 values of its lines, in order.
        self._digest_users: dict[tuple[bytes, bytes], list[bytes]] = {}

    @property
    def challenge(self) -> bytes:
        """A challenge with a new nonce, for a caller that has no ``verify`` answer at hand
        (at ``time.monotonic()``: the clock of ProxyServer's ``now`` and of IngressASGI's
        ``limit_clock``)."""
        return self._challenge(time.monotonic(), False)

    @challenge.setter
    def challenge(self, value: bytes) -> None:
        pass  # BasicAuth's static one: never used here

    def _digest_file(self, text: str, key: str) -> bool:
        """The htdigest file of the Secret (``BasicAuth._load`` hands it over): lines end at LF
        or CR; ``user:realm:HA1``, the HA1 ending at NUL, ``:``, ``#``, CR or LF and 32
        characters long; a ``#`` in the user or realm never matches (a comment)."""
        users: dict[tuple[bytes, bytes], list[bytes]] = {}
        odd = 0
        for line in re.split(r"[\r\n]", text):
            if not line:
                continue
            user, realm, rest = (line.encode("utf-8", "surrogateescape").split(b":", 2)
                                 + [b"", b""])[:3]
            ha1 = re.split(rb"[\0:#\r\n]", rest, 1)[0]
            if b"#" in user or b"#" in realm or len(ha1) != 32 or line.count(":") < 2:
                if not line.startswith("#"):
                    odd += 1
                continue
            users.setdefault((user, realm), []).append(ha1)
        if odd:
            self._warn(f"auth-secret {key}: {odd} line(s) not of the form user:realm:HA1 (an "
                       "htdigest file, HA1 the 32 hex digits of MD5(user:realm:password)); "
                       "ignored")
        self._digest_users = users
        return True

    def check(self, authorization: bytes | None) -> tuple[int, str | None]:
        source = self._secrets()
        if source is not self._source:
            self._load(source)
        return (_DENIED if self._reason is not None else UNAUTHORIZED), None

    def unsettled(self, authorization: bytes | None) -> Callable[[], object] | None:
        return None  # two MD5s: nothing to run off the event loop

    def verify(self, authorization: bytes | None, method: bytes, target: bytes,
               now: float, client_ip: str | None = None, *, admitted: bool = False
               ) -> tuple[int, bytes | None]:
        """``(0, Authentication-Info value)`` when the credentials of ``authorization`` are
        right for ``method`` and ``target`` (the request target as received) at ``now``;
        ``(401, challenge)`` otherwise, ``(401, None)`` while ``client_ip`` is evading (the
        module docstring; None: not tracked); ``(503, None)`` while the Secret cannot be
        used. The value is None when the cnonce cannot be written in a response header
        (``_info``). ``admitted``: another location's ``verify`` let this same request in
        (``_actions.access_answer``, two locations' controls): its nonce and ``nc`` are not
        taken from the replay table a second time (that second use was a replay: a 401
        whatever the credentials), only this location's users are checked."""
        status, _ = self.check(None)
        if status == _DENIED:
            return _DENIED, None
        if _EVASION.evading(client_ip, now):
            return UNAUTHORIZED, None
        fields = parse_digest(authorization) if authorization else None
        if fields is None or len(fields["nonce"]) != 64 \
                or not hmac.compare_digest(fields["realm"], self.realm.encode("ascii")):
            # Not read (the module's check_credentials, its realm compare): no failure.
            return UNAUTHORIZED, self._challenge(now, False)
        stale = False
        ha1 = self._admits(fields, method, target)
        if ha1 is not None:
            issued = _issued(fields["nonce"])
            nc_text = fields["nc"]
            nc = int(nc_text, 16) if _HEX.fullmatch(nc_text) else -1
            if issued is not None and issued <= now:
                if not 0 <= nc < REPLAYS:
                    stale = True
                else:
                    verdict = 0 if admitted else _REPLAYS.use(fields["nonce"], issued, nc, now)
                    if verdict == 0:
                        _EVASION.succeeded(client_ip)
                        return 0, _info(fields, ha1)
                    stale = verdict == 2
        _EVASION.failed(client_ip, now)
        return UNAUTHORIZED, self._challenge(now, stale)

    def _admits(self, fields: dict[str, bytes], method: bytes, target: bytes
                ) -> bytes | None:
        """The HA1 of the first of the user's lines the response is right for (nonce and nc
        aside; the realm is the location's), else None."""
        realm = self.realm.encode("ascii")
        uri = fields["uri"]
        qop = fields["qop"]
        if qop.lower() != b"auth":
            return None
        if uri != target and not (target.startswith(uri) and target[len(uri):][:1] == b"?"):
            return None
        ha2 = _md5(method + b":" + uri)
        tail = b":".join((fields["nonce"], fields["nc"], fields["cnonce"], qop, ha2))
        response = fields["response"]
        found = None
        for ha1 in self._digest_users.get((fields["username"], realm), ()):
            # Every line is compared (constant time); the module stops at the first.
            if hmac.compare_digest(_md5(ha1 + b":" + tail), response) and found is None:
                found = ha1
        return found

    def _challenge(self, now: float, stale: bool) -> bytes:
        return b'Digest algorithm="MD5", qop="auth", realm="%s", nonce="%s"%s' % (
            self.realm.encode("ascii"), new_nonce(now), b', stale="true"' if stale else b"")


def _info(fields: dict[str, bytes], ha1: bytes) -> bytes | None:
    """The ``Authentication-Info`` value of a verified response (the module docstring), or
    None when the cnonce holds a control character (a quoted pair ``\\`` + CTL, which the
    header parser admits as the module's does): no field value may carry one (RFC 9110 §5.5;
    a quoted-pair is ``"\\" ( HTAB / SP / VCHAR / obs-text )``, §5.6.4), and a CR or LF
    would start a response header of the client's choosing (the module writes the cnonce
    bare). The proxy core refuses such a request head already (400); an ASGI server may hand
    it over. The request is let in all the same, without the header."""
    if _CTL.search(fields["cnonce"]) is not None:
        return None
    rspauth = _md5(b":".join((ha1, fields["nonce"], fields["nc"], fields["cnonce"],
                              fields["qop"], _md5(b":" + fields["uri"]))))
    cnonce = fields["cnonce"].replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'qop="auth", rspauth="%s", cnonce="%s", nc=%s' % (rspauth, cnonce, fields["nc"])


def digest_without_realm(prefix: str) -> tuple[str, str]:
    """``(denial reason, warning)`` of ``auth-type: digest`` without a (valid) ``auth-realm``:
    ingress-nginx writes ``auth_digest "";``, with which the module is off
    (ngx_http_auth_digest_handler: "if (realm.len == 0 || alcf->user_file.value.len == 0) {
    return NGX_DECLINED; }"): the location would be served without authentication. ingresslib
    denies it instead (503)."""
    return (f"annotation {prefix}auth-type: digest without {prefix}auth-realm",
            f"digest without {prefix}auth-realm: the Ingress's routes answer 503 (ingress-nginx "
            "writes 'auth_digest \"\";', which turns the digest module off: it would serve "
            "them without authentication)")


def asgi_request(scope: Any, rel: str, query: str | None, clock: Callable[[], float]
                 ) -> Callable[[], tuple[bytes, bytes, float]]:
    """IngressASGI's ``request`` of ``access_answer``: the method, the target as received
    (``$request_uri``: ``raw_path`` and the query) and ``clock()`` (its ``limit_clock``)."""
    def request() -> tuple[bytes, bytes, float]:
        from .._asgi_scan import _request_uri

        path, q = _request_uri(scope, rel, query)
        target = path + ("?" + q if q else "")
        return (str(scope.get("method") or "GET").encode("latin-1"),
                target.encode("latin-1"), clock())
    return request
