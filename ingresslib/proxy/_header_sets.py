"""Header sets from ConfigMaps: the ``custom-headers`` annotation and the controller ConfigMap
keys ``add-headers``, ``proxy-set-headers`` and ``hide-headers`` (pure, no I/O; see the
sections below for the keys).

ingress-nginx (internal/ingress/annotations/customheaders/main.go, ``customHeaders.Parse``)
reads the annotation's value as the key ``namespace/name`` of a ConfigMap
(``a.r.GetConfigMap(clientHeadersConfigMapName)``) and adds each ``data`` entry to every answer
of the location (nginx.tmpl: ``more_set_headers "{{ $k }}: {{ $v }}";``, which replaces a header
of that name the upstream sent, on every status). Each entry is checked there: the name against
``^[a-zA-Z\\d\\-_]+$`` (``ValidHeader``), the value against ``ValidValue``'s printable-ASCII class
(no CR, LF, NUL or other control character: no header injection), and the name must be listed
in the controller ConfigMap's ``global-allowed-response-headers`` ("header %s is not allowed,
defined allowed headers inside global-allowed-response-headers"), compared as written.

Where ingress-nginx denies the location (``ing_errors.NewLocationDenied``: every request 503)
for a missing ConfigMap or one bad entry, ingresslib adds nothing and says why (a warning
naming the Ingress and the annotation; README's divergence table). A value holding ``$``
(nginx would expand it as a variable) is refused the same way: ingresslib expands none; so is
a name that frames the answer or manages the connection (``_own_response_names``). The spaces
around a value are no part of it; a value of only spaces clears the header of that name
(headers-more), in ``proxy-set-headers`` it is sent as written (``SetHeaders._only_spaces``).

The ConfigMap is looked up when a response needs it, in the router's current
``resources.config_maps`` (a new tuple after every change): a reload that brings the
ConfigMap applies it, one that removes it stops it. The answer is remembered per tuple.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

__all__ = ["ADD_HEADERS", "AddHeaders", "CUSTOM_HEADERS", "CustomHeaders", "PROXY_SET_HEADERS",
           "SetHeaders", "add_headers_for", "combine", "config_maps_of", "global_headers",
           "hidden_names", "hiding_send", "parse_add_headers", "parse_allowed_headers",
           "parse_custom_headers", "parse_hide_headers", "server_send", "set_header_lines",
           "set_header_pairs", "set_headers_for", "upstream_set_headers", "valid_header_name",
           "valid_header_value"]

CUSTOM_HEADERS = "custom-headers"
ADD_HEADERS = "add-headers"
PROXY_SET_HEADERS = "proxy-set-headers"
_UNSET = object()

_log = logging.getLogger("ingresslib.proxy")

#: customheaders.ValidHeader: ``^[a-zA-Z\d\-_]+$``.
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
#: customheaders.ValidValue: ``^[a-zA-Z\d_ :;.,\\/"'?!(){}\[\]@<>=\-+*#$&\x60|~^%]+$``.
_VALUE_RE = re.compile(r"[A-Za-z0-9_ :;.,\\/\"'?!(){}\[\]@<>=+*#$&`|~^%-]+\Z")
#: parser.BasicCharsRegex, the annotation value's validator: ``^[A-Za-z0-9\-\.\_\~\/]*$``.
_REF_RE = re.compile(r"[A-Za-z0-9._~/-]*\Z")


def valid_header_name(name: str) -> bool:
    """customheaders.ValidHeader (letters, digits, ``-`` and ``_``; not empty)."""
    return _NAME_RE.match(name) is not None


def valid_header_value(value: str) -> bool:
    """customheaders.ValidValue (printable ASCII of its class, no control character)."""
    return _VALUE_RE.match(value) is not None


def parse_allowed_headers(value: str) -> tuple[str, ...]:
    """The ConfigMap key ``global-allowed-response-headers``: a comma-separated list of header
    names (split and trimmed as ingress-nginx's ``splitAndTrimSpace``); a name that is not
    valid raises ValueError (ingress-nginx skips it with a warning; here the ConfigMap's
    other invalid values are errors too)."""
    out: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if not valid_header_name(part):
            raise ValueError(f"{part!r} is not a valid header name (letters, digits, - and _)")
        if part not in out:
            out.append(part)
    return tuple(out)


class CustomHeaders:
    """One route's ``custom-headers``: the ConfigMap ``namespace``/``name``, resolved against
    the current ConfigMaps by :meth:`headers`."""

    __slots__ = ("namespace", "name", "allowed", "where", "_cached")
    #: What the warnings name after ``where``.
    _KEY = f"annotation nginx.ingress.kubernetes.io/{CUSTOM_HEADERS}"
    #: Whether each name must be listed in ``allowed`` (global-allowed-response-headers).
    _CHECK_ALLOWED = True
    #: Whether an empty value is taken (proxy_set_header: the header is not sent).
    _EMPTY_OK = False

    def __init__(self, namespace: str, name: str, allowed: Iterable[str], where: str) -> None:
        self.namespace = namespace
        self.name = name
        self.allowed = frozenset(allowed)
        #: ``Ingress NS/NAME``: what the warnings name.
        self.where = where
        #: (the ConfigMaps tuple last resolved against, its headers): one attribute, replaced
        #: whole, so that two threads never see one's source with the other's headers.
        self._cached: tuple[Any, tuple[tuple[bytes, bytes], ...]] = (_UNSET, ())

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __repr__(self) -> str:
        return f"CustomHeaders({self.ref!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomHeaders) and (self.namespace, self.name, self.allowed) \
            == (other.namespace, other.name, other.allowed)

    def __hash__(self) -> int:
        return hash((self.namespace, self.name, self.allowed))

    def headers(self, config_maps: Any,
                warn: Callable[[str], None] | None = None) -> tuple[tuple[bytes, bytes], ...]:
        """The (name as written, value) pairs to set on an answer of the route, given the
        router's current ``resources.config_maps`` (None or a missing/invalid ConfigMap:
        none, and ``warn`` -- default: the log -- is told once per ConfigMaps tuple)."""
        source, cached = self._cached
        if config_maps is source:
            return cached
        found, problem = self.resolve(config_maps)
        self._cached = (config_maps, found)
        if problem is not None:
            text = f"{self.where}: {self._KEY}: {problem}; no header added"
            if warn is not None:
                warn(text)
            else:
                _log.warning("%s", text)
        return found

    def resolve(self, config_maps: Any
                ) -> tuple[tuple[tuple[bytes, bytes], ...], str | None]:
        """(headers, None), or ((), the problem) -- customHeaders.Parse's checks."""
        if config_maps is None:
            return (), f"ConfigMap {self.ref!r} not known (the router exposes no ConfigMaps)"
        cm = None
        for c in config_maps:
            meta = c.metadata
            if meta.name == self.name and (meta.namespace or "default") == self.namespace:
                cm = c
                break
        if cm is None:
            return (), f"ConfigMap {self.ref!r} not found (ingress-nginx: \"unable to find " \
                "configMap\")"
        out: list[tuple[bytes, bytes]] = []
        # Go's template ranges over a map in key order: the headers are written sorted.
        for name in sorted(cm.data):
            raw = cm.data[name]
            # Without the spaces around it: headers-more skips those before it
            # (ngx_http_headers_more_parse_header: "if (value.len == 0) { if (... ||
            # isspace(raw_header->data[i])) continue;"), and RFC 9110 §5.5: "a field value
            # does not include leading or trailing whitespace" -- h11 (uvicorn, behind
            # IngressASGI) refuses to send one that does: "Illegal header value".
            value = raw.strip(" ") or self._only_spaces(raw)
            if not valid_header_name(name):
                return (), f"ConfigMap {self.ref!r}: invalid header name {name!r}"
            problem = self._name_problem(name)
            if problem is not None:
                return (), f"ConfigMap {self.ref!r}: {problem}"
            # (checked as written: ValidValue takes a value of only spaces, not an empty one)
            if not (self._EMPTY_OK and raw == "") and not valid_header_value(raw):
                return (), f"ConfigMap {self.ref!r}: invalid value of header {name!r} " \
                    "(printable ASCII only, no control character)"
            if "$" in value:
                return (), f"ConfigMap {self.ref!r}: the value of header {name!r} holds " \
                    "\"$\": nginx variables are not supported"
            if self._CHECK_ALLOWED and name not in self.allowed:
                shown = ", ".join(sorted(self.allowed)) or "none"
                return (), f"ConfigMap {self.ref!r}: header {name!r} is not listed in the " \
                    f"ConfigMap key global-allowed-response-headers (allowed: {shown})"
            out.append((name.encode("ascii"), value.encode("ascii")))
        return tuple(out), None

    def _only_spaces(self, raw: str) -> str:
        """The value of an entry of only spaces (or none: ``raw`` is ""): empty, which clears
        the header -- headers-more's value is empty once its parser skipped the spaces, and
        an empty value removes the header of that name and adds none
        (ngx_http_headers_more_headers_out.c ``ngx_http_set_header_helper``: "if (value->len
        == 0 || matched) { ... h[i].hash = 0; }"); the set's other entries still apply
        (``cors_merge`` / ``asgi_merge`` write no empty value)."""
        return ""

    def _name_problem(self, name: str) -> str | None:
        """Why a valid ``name`` cannot be in the set (None: it can): one that frames the
        answer's body or manages the client connection (``_own_response_names``)."""
        if name.lower() in _own_response_names():
            return f"header {name!r} frames the answer or manages the connection: " \
                "ingresslib writes it itself"
        return None


@functools.lru_cache(maxsize=1)
def _own_response_names() -> frozenset[str]:
    """The names an ``add-headers`` / ``custom-headers`` entry may not set: the body's framing
    and the hop-by-hop headers (proxy/_headers.py ``_HOP_BY_HOP``), which this hop derives for
    each answer. headers-more would set them: ``more_set_headers "Content-Length: 1"`` sets
    ``content_length_n`` (ngx_http_headers_more_headers_out.c
    ``ngx_http_set_content_length_header``), so a 5-byte answer leaves 4 bytes a keep-alive
    client reads as the next response; ``Transfer-Encoding: chunked`` beside a length has a
    client read a plain body as chunks; a ``Connection: keep-alive`` would replace the
    ``Connection: close`` of an answer after which the connection closes."""
    from ._headers import _HOP_BY_HOP  # (imports _settings, which imports this module)

    return frozenset(n.decode("ascii") for n in _HOP_BY_HOP) | {"content-length"}


def combine(first: list[tuple[bytes, bytes]] | None,
            custom: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]] | None:
    """``first`` (the location's CORS headers, or None) then ``custom``, a header of ``custom``
    replacing one of ``first`` of the same name (the later ``more_set_headers`` wins)."""
    if not custom:
        return first
    names = {n.lower() for n, _ in custom}
    return [h for h in first or () if h[0].lower() not in names] + list(custom)


def config_maps_of(router: Any) -> Any:
    """``router.resources.config_maps`` (None when the router exposes none: a custom router,
    or a wrapper that does not hand ``resources`` on)."""
    return getattr(getattr(router, "resources", None), "config_maps", None)


def parse_custom_headers(value: str, namespace: str | None, allowed: Iterable[str],
                         where: str) -> CustomHeaders:
    """The annotation's value ``namespace/name``; ValueError when it cannot name a ConfigMap
    ingress-nginx would use (its validator's characters; a key ``namespace/name``; the
    Ingress's own namespace: "Only ConfigMaps on the same namespace are allowed")."""
    ns, name = _ref(value, "custom-headers")
    own = namespace or "default"
    if ns != own:
        raise ValueError(f"ConfigMap {value.strip()!r} is in another namespace than the Ingress's "
                         f"({own!r}): only ConfigMaps of the same namespace are allowed")
    return CustomHeaders(ns, name, allowed, where)


# ---------------------------------------------------------------- controller ConfigMap keys
# ingress-nginx's ``add-headers`` and ``hide-headers`` (config.go ``AddHeaders string
# `json:"add-headers"```, ``HideHeaders []string `json:"hide-headers"```). controller.go reads
# ``add-headers`` as the key ``namespace/name`` of a ConfigMap (``n.store.GetConfigMap``; a
# missing one: "Error reading ConfigMap %q from local store", nothing added) and nginx.tmpl
# writes each entry in the http block: ``more_set_headers "K: V";`` -- on every answer of every
# server, the proxy's own too, before a location's own more_set_headers (headers-more's
# merge_loc_conf runs the parent's commands first): CORS and custom-headers win a name they
# share. ``hide-headers`` becomes ``proxy_hide_header NAME;`` (http block): the named headers
# of an upstream's answer are dropped (never the proxy's own answers, never this hop's added
# headers).


class AddHeaders(CustomHeaders):
    """The controller ConfigMap's ``add-headers``: the ConfigMap ``namespace``/``name`` whose
    data are set on every answer, resolved as :class:`CustomHeaders` (same name and value
    checks, no ``$`` expansion) but not limited to global-allowed-response-headers (the
    template writes them unchecked)."""

    __slots__ = ()
    _KEY = f"ConfigMap key {ADD_HEADERS}"
    _CHECK_ALLOWED = False

    def __repr__(self) -> str:
        return f"AddHeaders({self.ref!r})"


def _ref(value: str, what: str) -> tuple[str, str]:
    v = value.strip()
    if not v or _REF_RE.match(v) is None:
        raise ValueError(f"invalid ConfigMap reference {value!r} for {what} (\"namespace/name\": "
                         "letters, digits and -._~/ only)")
    ns, sep, name = v.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise ValueError(f"invalid ConfigMap reference {value!r} for {what}: \"namespace/name\" "
                         "(ingress-nginx looks the ConfigMap up by that key)")
    return ns, name


def parse_add_headers(value: str, key: str = ADD_HEADERS) -> str | None:
    """The ConfigMap key ``add-headers`` (or ``proxy-set-headers``: ``key``):
    ``namespace/name`` (None: empty, none); ValueError when it cannot name a ConfigMap."""
    if not value.strip():
        return None
    ns, name = _ref(value, key)
    return f"{ns}/{name}"


def parse_hide_headers(value: str) -> tuple[str, ...]:
    """The ConfigMap key ``hide-headers``: a comma-separated list of header names (as
    ``global-allowed-response-headers``: trimmed, letters, digits, ``-`` and ``_``)."""
    return parse_allowed_headers(value)


@functools.lru_cache(maxsize=16)
def add_headers_for(ref: str) -> AddHeaders:
    """The one :class:`AddHeaders` of the reference ``namespace/name`` (its cache per
    ConfigMaps tuple is shared by every connection)."""
    ns, _, name = ref.partition("/")
    return AddHeaders(ns, name, (), "controller ConfigMap")


def global_headers(add_headers: str, router: Any, *, server_tokens: bool
                   ) -> tuple[tuple[bytes, bytes], ...]:
    """The ``add-headers`` ConfigMap's headers (``add_headers``: its ``namespace/name``, ""
    for none) against ``router``'s current ConfigMaps (a missing or invalid one: none, warned
    once per ConfigMaps tuple). Without ``server_tokens`` its ``Server`` entry is left out:
    nginx.tmpl writes the http block's ``more_set_headers`` and then, unless server-tokens,
    ``more_clear_headers Server``, which headers-more runs after them (one location's
    commands in order, ``ngx_http_headers_more_filter``): the Server it set is cleared."""
    if not add_headers:
        return ()
    pairs = add_headers_for(add_headers).headers(config_maps_of(router))
    if server_tokens or not pairs:
        return pairs
    last = _cleared
    if last[0] is pairs:
        return last[1]
    return _server_cleared(pairs)


#: The last (add-headers pairs, the same without Server): ``headers`` gives the same tuple
#: back per ConfigMaps tuple, so an identity test finds it on every later answer.
_cleared: tuple[object, tuple[tuple[bytes, bytes], ...]] = (None, ())


def _server_cleared(pairs: tuple[tuple[bytes, bytes], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """``pairs`` without a ``Server`` entry (``more_clear_headers Server``), kept in
    ``_cleared`` (one assignment: a thread reads the old pair or the new one)."""
    global _cleared
    out = tuple(p for p in pairs if p[0].lower() != b"server")
    _cleared = (pairs, out)
    return out


#: Never hidden: the framing the proxy forwards a body by is its own business (a hidden
#: Content-Length would leave the client without the length the body is cut by).
_NEVER_HIDDEN = frozenset({b"content-length", b"transfer-encoding"})


@functools.lru_cache(maxsize=16)
def hidden_names(names: tuple[str, ...]) -> frozenset[bytes]:
    """``hide-headers`` as lower-case bytes (nginx compares names case-insensitively); cached:
    the settings' tuple is the same on every response."""
    return frozenset(n.lower().encode("ascii") for n in names) - _NEVER_HIDDEN


_ASGI_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})


def _asgi_name(name: Any, what: str = "name") -> bytes:
    """An app's response header name (``what``: or value) as bytes: www.rst wants byte
    strings, but uvicorn's h11 writes a ``str`` an app sends (``bytesify``: as ASCII), and
    IngressASGI's filters (``_asgi_reply._name``, ``_gzip._b``) read one as latin-1, as here;
    bytearray and memoryview are byte strings too. Anything else, a ``str`` that is not
    latin-1 included, is refused with a TypeError naming it."""
    if isinstance(name, str):
        try:
            return name.encode("latin-1")
        except UnicodeEncodeError:
            # (a header name is a token, ASCII: h11 itself encodes a str one as ASCII)
            raise TypeError(f"ASGI response header {what} {name!r} is not a byte string (a "
                            f"str {what} is read as latin-1, and this one is not latin-1)"
                            ) from None
    if isinstance(name, (bytes, bytearray, memoryview)):
        return bytes(name)
    # (bytes(7) is seven NUL bytes, bytes(None) a TypeError naming nothing)
    raise TypeError(f"ASGI response header {what} {name!r} is not a byte string")


def hiding_send(send: Callable[[Any], Awaitable[None]], hidden: frozenset[bytes]
                ) -> Callable[[Any], Awaitable[None]]:
    """IngressASGI: the mounted app's ``send`` with the ``hide-headers`` names dropped from its
    response start (the app is this hop's upstream), before this hop adds its own headers.
    A ``str`` name is read as latin-1 (uvicorn's h11 takes an ASCII one) and handed on as the
    app gave it; a name of another type, or a ``str`` that is not latin-1: TypeError naming
    it (``_asgi_name``)."""

    async def hiding(message: Any) -> None:
        if message.get("type") in _ASGI_STARTS or message.get("type") == "websocket.accept":
            headers = message.get("headers")
            if headers:
                # (read once: a one-pass iterable is handed on as the list)
                message = dict(message)
                message["headers"] = [h for h in headers
                                      if _asgi_name(h[0]).lower() not in hidden]
        await send(message)

    return hiding


def server_send(send: Callable[[Any], Awaitable[None]], token: bytes
                ) -> Callable[[Any], Awaitable[None]]:
    """IngressASGI with ``server-tokens`` (proxy/_headers.py): ``send`` (the ASGI server's)
    with ``server: <token>`` first in every response head that has no Server header (the
    app's, passed by allow-backend-server-header), a 101's (``websocket.accept``) too, as
    nginx's header filter writes it on every answer. (An ASGI server that writes its own
    Server header, uvicorn's default, sends both: turn it off there.)"""

    async def adding(message: Any) -> None:
        if message.get("type") in _ASGI_STARTS or message.get("type") == "websocket.accept":
            headers = message.get("headers") or ()
            if type(headers) is not list and type(headers) is not tuple:
                headers = list(headers)  # (a one-pass iterable: read once, handed on)
                message = {**message, "headers": headers}
            if not any(_asgi_name(h[0]).lower() == b"server" for h in headers):
                message = dict(message)
                message["headers"] = [(b"server", token), *headers]
        await send(message)

    return adding


# ---------------------------------------------------------------- proxy-set-headers
# config.go ``ProxySetHeaders string `json:"proxy-set-headers"```: controller.go reads it as
# add-headers (``n.store.GetConfigMap(cfg.ProxySetHeaders)``, a missing one warned, nothing
# set) and nginx.tmpl writes each entry in every proxied location, after this hop's own
# ``proxy_set_header`` lines (Host, X-Request-ID, X-Real-IP, X-Forwarded-*, X-Original-
# Forwarded-For, X-Scheme, Proxy ""): ``proxy_set_header {{ $k }} {{ $v | quote }};``. nginx
# then sends the request's headers without any of the names set (ngx_http_proxy_module's
# headers hash: the client's header of that name is replaced), and a set header whose value is
# empty is not sent at all. A name this hop writes itself would go upstream twice (nginx sends
# both proxy_set_header lines: two Host headers, two X-Forwarded-For): refused here.


@functools.lru_cache(maxsize=1)
def _own_request_names() -> frozenset[str]:
    from ._headers import UNDERSCORE_SHADOWED  # (imports _settings, which imports this module)

    return frozenset(n.decode("ascii") for n in UNDERSCORE_SHADOWED) | {"transfer-encoding"}


class SetHeaders(CustomHeaders):
    """The controller ConfigMap's ``proxy-set-headers``: the ConfigMap ``namespace``/``name``
    whose data are request headers sent upstream (``proxy_set_header``), replacing the
    client's of those names; an empty value: neither sent. Names and values as
    :class:`AddHeaders` (no ``$`` expansion); a name ingresslib writes or drops itself (Host,
    X-Forwarded-*, X-Real-IP, X-Request-ID, hop-by-hop and framing headers) refuses the set."""

    __slots__ = ()
    _KEY = f"ConfigMap key {PROXY_SET_HEADERS}"
    _CHECK_ALLOWED = False
    _EMPTY_OK = True

    def __repr__(self) -> str:
        return f"SetHeaders({self.ref!r})"

    def _only_spaces(self, raw: str) -> str:
        """As written: nginx leaves out only a value of length 0 (ngx_http_proxy_module.c
        ``ngx_http_proxy_create_request``: "if (val_len == 0) { continue; }"), so
        ``proxy_set_header X-Env "   "`` sends the spaces and the endpoint reads an empty
        field; "" stays "" (not sent, the client's dropped)."""
        return raw

    def _name_problem(self, name: str) -> str | None:
        if name.lower() in _own_request_names():
            return f"header {name!r} is one ingresslib writes or drops itself (ingress-nginx " \
                "would send it twice)"
        return None


@functools.lru_cache(maxsize=16)
def set_headers_for(ref: str) -> SetHeaders:
    """The one :class:`SetHeaders` of the reference ``namespace/name``."""
    ns, _, name = ref.partition("/")
    return SetHeaders(ns, name, (), "controller ConfigMap")


def upstream_set_headers(proxy_set_headers: str, router: Any
                         ) -> tuple[tuple[bytes, bytes], ...]:
    """The ``proxy-set-headers`` ConfigMap's (name, value) pairs ("": none) against
    ``router``'s current ConfigMaps (a missing or invalid one: none, warned once per tuple)."""
    if not proxy_set_headers:
        return ()
    return set_headers_for(proxy_set_headers).headers(config_maps_of(router))


def set_header_lines(lines: list[bytes], pairs: tuple[tuple[bytes, bytes], ...]) -> list[bytes]:
    """The proxy core: the request's header ``lines`` (``b"Name: value\\r\\n"``) without
    those ``pairs`` name, then the pairs that have a value."""
    names = {n.lower() for n, _ in pairs}
    kept = [line for line in lines if line.split(b":", 1)[0].lower() not in names]
    kept.extend(b"%s: %s\r\n" % (n, v) for n, v in pairs if v)
    return kept


def set_header_pairs(headers: Iterable[tuple[bytes, bytes]],
                     pairs: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """IngressASGI: the app's request ``headers`` without those ``pairs`` name, then the
    pairs that have a value (names lower-cased, as an ASGI server gives them)."""
    names = {n.lower() for n, _ in pairs}
    kept = [h for h in headers if bytes(h[0]).lower() not in names]
    # (a value of only spaces, ``SetHeaders._only_spaces``: empty, as a server that read the
    # field from the wire hands it an app)
    kept.extend((n.lower(), v.strip(b" ")) for n, v in pairs if v)
    return kept
