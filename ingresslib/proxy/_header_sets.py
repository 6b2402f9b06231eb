"""Header sets from ConfigMaps: the ``custom-headers`` annotation (pure, no I/O).

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
(nginx would expand it as a variable) is refused the same way: ingresslib expands none.

The ConfigMap is looked up when a response needs it, in the router's current
``resources.config_maps`` (a new tuple after every change): a reload that brings the
ConfigMap applies it, one that removes it stops it. The answer is remembered per tuple.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["CUSTOM_HEADERS", "CustomHeaders", "combine", "config_maps_of", "parse_custom_headers", "parse_allowed_headers",
           "valid_header_name", "valid_header_value"]

CUSTOM_HEADERS = "custom-headers"
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
            text = f"{self.where}: annotation nginx.ingress.kubernetes.io/{CUSTOM_HEADERS}: " \
                f"{problem}; no header added"
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
            value = cm.data[name]
            if not valid_header_name(name):
                return (), f"ConfigMap {self.ref!r}: invalid header name {name!r}"
            if not valid_header_value(value):
                return (), f"ConfigMap {self.ref!r}: invalid value of header {name!r} " \
                    "(printable ASCII only, no control character)"
            if "$" in value:
                return (), f"ConfigMap {self.ref!r}: the value of header {name!r} holds " \
                    "\"$\": nginx variables are not supported"
            if name not in self.allowed:
                shown = ", ".join(sorted(self.allowed)) or "none"
                return (), f"ConfigMap {self.ref!r}: header {name!r} is not listed in the " \
                    f"ConfigMap key global-allowed-response-headers (allowed: {shown})"
            out.append((name.encode("ascii"), value.encode("ascii")))
        return tuple(out), None


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
    v = value.strip()
    if not v or _REF_RE.match(v) is None:
        raise ValueError(f"invalid ConfigMap reference {value!r} (\"namespace/name\": letters, "
                         "digits and -._~/ only)")
    ns, sep, name = v.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise ValueError(f"invalid ConfigMap reference {value!r}: \"namespace/name\" "
                         "(ingress-nginx looks the ConfigMap up by that key)")
    own = namespace or "default"
    if ns != own:
        raise ValueError(f"ConfigMap {v!r} is in another namespace than the Ingress's "
                         f"({own!r}): only ConfigMaps of the same namespace are allowed")
    return CustomHeaders(ns, name, allowed, where)
