"""Cookie affinity (``affinity: cookie``, §8): the ``CookieAffinity`` balancer (balanced and
persistent sessions, the ``Set-Cookie`` it writes), the upstream name that salts persistent
cookies, and the user agents that get no ``SameSite=None``."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from email.utils import formatdate

from ._balance_hash import _RingCache
from ._balance_protocol import Address, BalancerOptions
from ._balance_request import RequestContext, cookie_value, header_value
from ._balance_spec import AffinityConfig
from ._endpoints import EndpointSet
from ._hashing import TriedMembers, hash_key, ngx_md5, salted_id

__all__ = [
    "CookieAffinity",
    "samesite_none_compatible",
    "upstream_name",
]

#: 9999-12-31 23:59:59 UTC, the latest ``Expires`` a cookie-date can say.
_LAST_COOKIE_DATE = 253402300799.0


def upstream_name(namespace: str, service: str | None, port: int | str | None) -> str:
    """ingress-nginx's name for the upstream of Service ``service`` (in ``namespace``) on
    ``port`` as written in the Ingress (number or name): ``internal/ingress/controller/util.go``
    ``upstreamName``::

        if service.Port.Number > 0 {
            return fmt.Sprintf("%s-%s-%d", namespace, service.Name, service.Port.Number) }
        if service.Port.Name != "" {
            return fmt.Sprintf("%s-%s-%s", namespace, service.Name, service.Port.Name) }
        return fmt.Sprintf("%s-INVALID", namespace)

    It is the backend's ``name`` in the Lua balancers, the salt of persistent affinity cookies.

    >>> upstream_name("shop", "web", 80), upstream_name("shop", "web", "http")
    ('shop-web-80', 'shop-web-http')
    """
    if service is not None:
        if type(port) is int and port > 0:
            return f"{namespace}-{service}-{port}"
        if type(port) is str and port:
            return f"{namespace}-{service}-{port}"
    return f"{namespace}-INVALID"


def samesite_none_compatible(user_agent: str | None) -> bool:
    """False for the user agents known to reject or mishandle ``SameSite=None`` cookies.

    A port of ingress-nginx's ``rootfs/etc/nginx/lua/util/same_site.lua``
    (``same_site_none_compatible``; reference
    https://www.chromium.org/updates/same-site/incompatible-clients). Its tests are Lua
    ``string.match`` patterns without magic characters, so each is a plain substring test::

        if string.match(user_agent, "Chrome/4") then return false
        elseif string.match(user_agent, "Chrome/5") then return false
        elseif string.match(user_agent, "Chrome/6") then return false
        elseif string.match(user_agent, "CPU iPhone OS 12") then return false
        elseif string.match(user_agent, "iPad; CPU OS 12") then return false
        elseif string.match(user_agent, "Macintosh")
            and string.match(user_agent, "Intel Mac OS X 10_14")
            and string.match(user_agent, "Safari")
            and not string.match(user_agent, "Chrome") then return false
        end
        return true

    No ``User-Agent`` at all counts as compatible (ingress-nginx would call ``string.match``
    on nil there, a Lua error).
    """
    if not user_agent:
        return True
    if "Chrome/4" in user_agent or "Chrome/5" in user_agent or "Chrome/6" in user_agent:
        return False
    if "CPU iPhone OS 12" in user_agent or "iPad; CPU OS 12" in user_agent:
        return False
    if ("Macintosh" in user_agent and "Intel Mac OS X 10_14" in user_agent
            and "Safari" in user_agent and "Chrome" not in user_agent):
        return False
    return True


class CookieAffinity:
    """Sticky sessions (ingress-nginx ``sticky_balanced.lua`` / ``sticky_persistent.lua``).

    ``persistent``: the cookie names the endpoint, as ingress-nginx writes it
    (:meth:`persistent_value`: a salted MD5 of ``ip:port``, then ``|`` and the backend's key);
    the session stays on it as long as it is ready. ``balanced``: the cookie holds a random key
    hashed onto a ring of the endpoints, so scaling out moves a fair share of sessions to the
    new endpoints. New sessions are spread round-robin (persistent) or by their random key
    (balanced); a new session that never reached its endpoint gives its round-robin turn
    back (:meth:`give_back`). A cookie that no longer leads anywhere is replaced.

    With ``conditional_samesite_none`` and ``SameSite=None`` (``ua_sensitive``), the cookie
    depends on the request's ``User-Agent``: callers pass ``samesite_none`` (see
    :meth:`samesite_none`) to the methods that render one.

    ``backend_name``: the backend's name as ingress-nginx names the upstream
    (:func:`upstream_name`), the salt of persistent-mode values. None (a balancer made without
    one) keeps the unsalted value ``MD5(ip:port)`` of ``nodemap.lua`` without a salt
    ("if hash_salt == nil then hash_salt = '' end"), which anyone can reverse into the endpoint:
    the Router always passes the name.
    """

    __slots__ = ("config", "tag", "ua_sensitive", "backend_name", "_rng", "_lock", "_rr",
                 "_cache", "_suffix", "_suffix_compat", "_backend_key", "_keys", "_retry_keys")

    def __init__(self, options: BalancerOptions, tag: str = "",
                 backend_name: str | None = None) -> None:
        spec = options.spec
        self.config = spec.affinity if spec and spec.affinity else AffinityConfig()
        #: Suffix marking balanced-mode keys of a canary backend, so the two sides of a canary
        #: never mistake each other's sessions.
        self.tag = tag
        self._rng = options.rng
        self._lock = threading.Lock()
        # New persistent sessions: round-robin as the backend's own balancer would be (a
        # strict cycle; nginx's smooth weighted round-robin when ``ingresslib.io/endpoint-weights``
        # gives the endpoints weights, as the balanced mode's ring and upstream-hash-by honour
        # them), new sessions' turns given back included (``give_back``). Imported here:
        # ``_balance`` imports this module.
        from ._balance import RoundRobin
        self._rr = RoundRobin()
        self._cache = _RingCache()
        c = self.config
        #: True when the cookie's attributes depend on the request's User-Agent.
        self.ua_sensitive = c.conditional_samesite_none and c.samesite == "None"
        self._suffix = self._attributes(True)
        self._suffix_compat = self._attributes(False)
        self.backend_name = backend_name
        #: ingress-nginx ``sticky.lua`` ``sync``: "self.backend_key = ngx.md5(ngx.md5(backend.name)
        #: .. backend.name)", appended to every value it writes: "value = value ..
        #: COOKIE_VALUE_DELIMITER .. self.backend_key" (``COOKIE_VALUE_DELIMITER = "|"``).
        self._backend_key = "" if backend_name is None else "|" + ngx_md5(
            ngx_md5(backend_name) + backend_name)
        #: Persistent mode: (endpoint set, salted key -> index, key per index), replaced whole.
        self._keys: tuple[EndpointSet | None, dict[str, int], tuple[str, ...]] = (None, {}, ())
        #: Balanced mode: (endpoint set, endpoint index -> a key a retry pick drew that hashes
        #: to it), replaced whole. ``cookie_for`` takes the key from here instead of drawing
        #: about n keys until one lands on a 1/n share of the ring (ingress-nginx draws the key
        #: first and goes where it leads: ``sticky_balanced.lua`` ``pick_new_upstream``).
        self._retry_keys: tuple[EndpointSet | None, dict[int, str]] = (None, {})

    def _persistent_keys(self, backend: EndpointSet
                         ) -> tuple[EndpointSet | None, dict[str, int], tuple[str, ...]]:
        st = self._keys
        if st[0] is not backend:
            if st[0] is not None and st[0].endpoints == backend.endpoints:
                st = (backend, st[1], st[2])  # same endpoints after an update: same keys
            else:
                salt = self.backend_name or ""
                keys = tuple(salted_id(salt, ip, port) for ip, port in backend.endpoints)
                st = (backend, {k: i for i, k in enumerate(keys)}, keys)
            self._keys = st
        return st

    def persistent_value(self, backend: EndpointSet, index: int) -> str:
        """The persistent-mode cookie value for ``backend.endpoints[index]``, as ingress-nginx
        writes it: ``MD5(backend_name + "ip:port")`` (``nodemap.lua``; ``sticky_persistent.lua``
        salts with "local hash_salt = backend["name"]") then ``|`` and ``MD5(MD5(backend_name) +
        backend_name)`` (``sticky.lua`` ``set_cookie``). So a session ingress-nginx started for
        the same backend is honoured here and the other way round, and a table of the unsalted
        MD5s of the pod network's addresses no longer reverses the value into the endpoint.
        (The salt is ingress-nginx's, and no secret: who guesses the upstream name can still
        hash every candidate address. Obfuscation, as in ingress-nginx.) Without a
        ``backend_name``: the unsalted MD5 alone."""
        return self._persistent_keys(backend)[2][index] + self._backend_key

    def _index_for(self, value: str, backend: EndpointSet) -> int:
        if self.config.mode == "persistent":
            # ingress-nginx ``sticky.lua`` ``get_cookie_parsed``: the value is split at "|" and
            # its first part ("result.upstream_key = parsed_value[1]") is what leads to the
            # endpoint; the backend key after it is not checked by ``balance()``.
            if "|" in value:
                value = value.partition("|")[0]
                if not value:
                    return -1
            return self._persistent_keys(backend)[1].get(value, -1)
        if "|" in value:
            # Balanced keys never hold "|" (hex, ".c" on the canary side; ingress-nginx's
            # "<time>.<pid>.<random>" has dots): this is a persistent session, e.g. of a canary
            # with its own ``affinity-mode: persistent`` under the same cookie name, which the
            # main side must not take over (``is_affinitized`` compares the backend key, so
            # ingress-nginx leaves it on its side).
            return -1
        ring = self._cache.get(backend)
        if self.tag:
            if not value.endswith(self.tag):
                return -1
        elif "." in value:
            return -1
        return ring.lookup(hash_key(value))

    def affinitized(self, request: RequestContext, backend: EndpointSet) -> bool:
        """True when the request carries this backend's cookie: it leads to a ready endpoint,
        or (persistent mode) it ends with this backend's key although its endpoint is gone.

        ingress-nginx ``sticky.lua``: "function _M.is_affinitized(self) return
        self:get_cookie_parsed().backend_key == self.backend_key end" - the side of a canary
        is decided by the backend key after "|", not by the endpoint, so a session whose pod
        was replaced stays on its side (``balance()`` then picks it a new endpoint there and
        sets a new cookie) instead of being split by weight again."""
        if not backend.endpoints:
            return False
        value = cookie_value(request._raw, self.config.name)
        if not value:
            return False
        if self._index_for(value, backend) >= 0:
            return True
        # split.split_string(raw_value, "|"): "result.backend_key = parsed_value[2]".
        return (self.config.mode == "persistent" and bool(self._backend_key)
                and value.count("|") >= 1 and value.split("|")[1] == self._backend_key[1:])

    def samesite_none(self, request: RequestContext) -> bool:
        """Whether a cookie for ``request`` may carry ``SameSite=None``: False only with
        ``conditional_samesite_none``, ``SameSite=None`` and a User-Agent that mishandles it.

        ingress-nginx ``sticky.lua`` ``set_cookie``: "if cookie_conditional_samesite_none and
        cookie_samesite == "None" and not
        same_site.same_site_none_compatible(ngx.var.http_user_agent) then cookie_samesite =
        nil". ``$http_user_agent`` joins repeated lines with ", " (nginx >= 1.23).
        """
        if not self.ua_sensitive:
            return True
        return samesite_none_compatible(
            header_value(request._raw, "user-agent", b"user-agent", join=", "))

    def pick_with_cookie(self, request: RequestContext, backend: EndpointSet,
                         tried: Collection[Address], samesite_none: bool | None = None
                         ) -> tuple[int | None, str | None]:
        """The endpoint index, and the ``Set-Cookie`` when a new session starts.
        ``samesite_none``: :meth:`samesite_none` of ``request`` if the caller has it (None:
        decided here, when a cookie is rendered)."""
        return self._choose(request, backend, tried, samesite_none, False)

    def _choose(self, request: RequestContext, backend: EndpointSet, tried: Collection[Address],
                samesite_none: bool | None, remember: bool) -> tuple[int | None, str | None]:
        # ``remember``: keep a retry's new key for ``cookie_for`` - only where the caller drops
        # the cookie returned here (``pick``), so that no key goes to two sessions.
        eps = backend.endpoints
        n = len(eps)
        if not n:
            return None, None
        value = cookie_value(request._raw, self.config.name)
        if value:
            idx = self._index_for(value, backend)
            if idx >= 0 and not (tried and eps[idx] in tried):
                return idx, None
        if samesite_none is None:
            samesite_none = self.samesite_none(request)
        if self.config.mode == "persistent":
            idx2 = self._rr.pick(request, backend, tried)
            if idx2 is None:
                return None, None
            return idx2, self.set_cookie(self.persistent_value(backend, idx2), samesite_none)
        key = self._new_key()
        ring = self._cache.get(backend)
        if tried:
            point = hash_key(key)
            idx3 = ring.lookup(point)
            if idx3 >= 0 and eps[idx3] not in tried:
                # The key leads to an untried endpoint (what ``lookup_skipping`` would answer,
                # without its pass over every endpoint): ``cookie_for`` may hand it out.
                if remember:
                    self._remember_retry_key(backend, idx3, key)
            else:
                idx3 = ring.lookup_skipping(point, TriedMembers(eps, tried))
        else:
            idx3 = ring.lookup(hash_key(key))
        if idx3 < 0:
            return None, None
        return idx3, self.set_cookie(key, samesite_none)

    def give_back(self, backend: EndpointSet, index: int) -> None:
        """The new session a request started on ``backend.endpoints[index]`` never reached it
        (answered without a connect: ``Router.give_back``): persistent mode's round-robin
        turn it took goes to the next new session (an unweighted one's served first; a
        weighted pick undone: ``RoundRobin.give_back``), so the sessions that do reach an
        endpoint are spread in the rotation's order. ingress-nginx picks a new session's
        endpoint in ``sticky.lua``'s ``balance()``, the balancer phase, at the connect: a
        request answered before takes no pick there. Nothing in balanced mode (a random
        key takes no turn)."""
        if self.config.mode == "persistent":
            self._rr.give_back(backend, index)

    #: At most this many remembered retry keys per endpoint set (a retry whose endpoint fails
    #: too never collects its key).
    MAX_RETRY_KEYS = 64

    def _remember_retry_key(self, backend: EndpointSet, index: int, key: str) -> None:
        st = self._retry_keys
        if st[0] is not backend or len(st[1]) >= self.MAX_RETRY_KEYS:
            st = self._retry_keys = (backend, {})
        st[1][index] = key

    def _take_retry_key(self, backend: EndpointSet, index: int) -> str | None:
        st = self._retry_keys
        if st[0] is not backend:
            return None
        # pop: a key leads one session only (sessions sharing a key would move together
        # when the endpoints change).
        return st[1].pop(index, None)

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        return self._choose(request, backend, tried, None, bool(tried))[0]

    def _new_key(self) -> str:
        """A balanced-mode session key: 64 random bits (the lock keeps the seeded sequence
        intact under threads), tagged on the canary side."""
        with self._lock:
            return f"{self._rng.getrandbits(64):016x}{self.tag}"

    #: Random keys drawn per endpoint before ``cookie_for`` gives up: an endpoint holding a
    #: 1/n share of the ring is missed 64n times in a row with probability about e^-64.
    KEY_DRAWS_PER_ENDPOINT = 64

    def cookie_for(self, backend: EndpointSet, index: int, samesite_none: bool = True
                   ) -> str | None:
        """The ``Set-Cookie`` for a session that a retry moved to ``backend.endpoints[index]``.

        A retry that moved a new session to another endpoint must name the endpoint that
        answered, as ingress-nginx does by calling ``set_cookie`` again on the retry's
        ``balance()`` (the later Set-Cookie of a name wins in the browser); so must a retry
        that moved an existing session with ``change_on_failure``. Persistent mode names the
        endpoint; balanced mode uses the key the retry's pick drew (ingress-nginx's
        ``pick_new_upstream``), else draws random keys until one hashes to it. None when no key was
        found (a session cookie pointing elsewhere would be worse than none).
        ``samesite_none``: as :meth:`samesite_none` said for the request.
        """
        eps = backend.endpoints
        if not 0 <= index < len(eps):
            return None
        if self.config.mode == "persistent":
            return self.set_cookie(self.persistent_value(backend, index), samesite_none)
        ring = self._cache.get(backend)
        key = self._take_retry_key(backend, index)
        if key is not None and ring.lookup(hash_key(key)) == index:
            return self.set_cookie(key, samesite_none)
        for _ in range(self.KEY_DRAWS_PER_ENDPOINT * len(eps)):
            key = self._new_key()
            if ring.lookup(hash_key(key)) == index:
                return self.set_cookie(key, samesite_none)
        return None

    def _attributes(self, samesite_none: bool) -> str | None:
        """The constant part of Set-Cookie after the value (None when Expires varies)."""
        c = self.config
        if c.expires is not None:
            return None
        return self._render_attributes(None, samesite_none)

    def _render_attributes(self, expires_at: float | None, samesite_none: bool = True) -> str:
        c = self.config
        parts = [f"Path={c.path}"]
        if c.domain:
            parts.append(f"Domain={c.domain}")
        if expires_at is not None:
            # A cookie-date has a 4-digit year (RFC 6265 §5.1.1) and formatdate raises past
            # 9999 (ValueError, or OverflowError beyond time_t): a ``session-cookie-expires``
            # of 10**12 s would fail every new session. The last second of 9999 is as far.
            expires_at = min(expires_at, _LAST_COOKIE_DATE)
            parts.append(f"Expires={formatdate(expires_at, usegmt=True)}")
        if c.max_age is not None:
            parts.append(f"Max-Age={c.max_age}")
        # sticky.lua: with conditional_samesite_none and an incompatible User-Agent,
        # "cookie_samesite = nil": no SameSite attribute at all.
        samesite = c.samesite if samesite_none or c.samesite != "None" else None
        if samesite:
            parts.append(f"SameSite={samesite}")
        # ingress-nginx's Secure is "cookie_secure = self.cookie_session_affinity.secure" (or
        # https, which the proxy adds). Beyond that: browsers drop SameSite=None and
        # Partitioned cookies without Secure. Where SameSite=None was left out for an old
        # user agent, so is the Secure it required (as in ingress-nginx).
        if c.secure or samesite == "None" or c.partitioned:
            parts.append("Secure")
        parts.append("HttpOnly")  # ingress-nginx always adds HttpOnly
        if c.partitioned:
            # ingress-nginx sessionaffinity/main.go: "This annotation sets the cookie as
            # Partitioned" (``Partitioned bool `json:"partitioned"```); sticky_test.lua:
            # "returns a cookie with Partitioned when user specifies partitioned=true",
            # asserting "payload.partitioned" of the lua-resty-cookie call.
            parts.append("Partitioned")
        return "; " + "; ".join(parts)

    def set_cookie(self, value: str, samesite_none: bool = True) -> str:
        """The ``Set-Cookie`` value for a session cookie holding ``value``; ``samesite_none``
        False leaves ``SameSite=None`` out (:meth:`samesite_none`)."""
        suffix = self._suffix if samesite_none else self._suffix_compat
        if suffix is None:
            suffix = self._render_attributes(time.time() + self.config.expires,  # type: ignore[operator]
                                             samesite_none)
        return f"{self.config.name}={value}{suffix}"

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        pass
