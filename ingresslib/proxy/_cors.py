"""CORS (``enable-cors`` and the ``cors-*`` annotations): parsing and the response headers.
Pure: no I/O. Used by the proxy core (proxy/_connection.py) and ``IngressASGI``.

The annotations are read as ingress-nginx's internal/ingress/annotations/cors/main.go
``Parse`` reads them (its defaults; each value first checked by the annotation's validator,
parser/validators.go ``checkAnnotation``: an invalid value is ignored and the default used),
an invalid value being reported here (``parse_cors``' warnings) instead of klog's line.

What a request then gets is nginx.tmpl's ``CORS`` template of the location:

- ``cors-allow-origin: "*"`` (the default): ``set $http_origin *; set $cors 'true';``: every
  request of the location gets ``Access-Control-Allow-Origin: *`` and the other headers.
- a list of origins (``scheme://host[:port]``, any lower-case scheme: an app's
  ``capacitor://localhost`` too; ``*.`` before the host; ``null``: a sandboxed page's Origin):
  template.go ``buildCorsOriginRegex`` writes ``if ($http_origin ~*
  ((o1)|(o2))$ ) { set $cors 'true'; }`` (each origin ``regexp.QuoteMeta``'d, its first ``*``
  becoming ``[A-Za-z0-9\\-]+``: one DNS label; ``buildOriginRegex``): a request whose Origin
  matches (case-insensitively; the regex is anchored at the end only, as nginx's) gets the
  headers with ``Access-Control-Allow-Origin: <its Origin>``; any other request none at all
  (it is proxied unchanged, an OPTIONS too).
- ``$request_method = 'OPTIONS'`` with ``$cors`` set (``trueoptions``) is answered 204 by the
  location itself (``return 204``, nginx's rewrite phase: before the location's redirects,
  allow/deny and basic auth), with the headers. The template also sets ``Content-Type:
  text/plain charset=UTF-8`` and ``Content-Length: 0`` there; nginx's header filter drops both
  from any 204 (ngx_http_header_filter: "if (r->headers_out.status == NGX_HTTP_NO_CONTENT) {
  ... ngx_str_null(&r->headers_out.content_type); ... r->headers_out.content_length = NULL"),
  and RFC 9110 §8.6 forbids the Content-Length: the 204 carries neither.
- on every other response of the location (the upstream's, an error from upstream, the
  proxy's own 502/504, a redirect, a 403/401) the headers are set by ``more_set_headers``:
  they replace any the upstream sent of the same name (``merge``).
- a location ingress-nginx denies (``ing_errors.LocationDenied``: an access annotation, a
  ``proxy-ssl-secret`` or ``auth-tls-secret`` it cannot use) has no CORS at all: nginx.tmpl
  writes the CORS template only ``{{ if isLocationAllowed $location }}``, the denied one gets
  "return 503;" alone.

Divergences (README): an empty element of the origin list (``"https://a.com,"``) is skipped
with a warning (ingress-nginx's regex gets an empty alternative, ``((https://a\\.com)|)$``,
which matches every Origin, and none); a list left without any valid origin gives no CORS
headers (warned); a methods/headers value holding a line break is invalid (nginx would write
it into the header).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._goparse import normalize_string, parse_bool, parse_int

__all__ = ["Cors", "parse_cors", "merge", "asgi_merge", "asgi_origin", "CORS_ANNOTATIONS",
           "PREFLIGHT_STATUS"]

#: The annotations (without the prefix) read here.
CORS_ANNOTATIONS = frozenset({
    "enable-cors", "cors-allow-origin", "cors-allow-methods", "cors-allow-headers",
    "cors-expose-headers", "cors-allow-credentials", "cors-max-age",
})

#: cors/main.go's defaults.
DEFAULT_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
DEFAULT_HEADERS = ("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,"
                   "Cache-Control,Content-Type,Range,Authorization")
DEFAULT_MAX_AGE = 1728000
#: nginx.tmpl: "if ($cors = "trueoptions") { ... return 204; }".
PREFLIGHT_STATUS = 204

# cors/main.go's regexes, written without nested backtracking (Go's RE2 is linear, Python's
# ``re`` is not: ``^([A-Za-z]+,?\s?)+$`` on 30 letters and a "!" never ends). Possessive
# quantifiers give the same language here: a run of letters is always taken whole (the next
# token cannot start inside it). ``\s`` is Go's ``[\t\n\f\r ]``; the line breaks are refused
# (see the module docstring), leaving tab and space.
_SP = "[\t ]"
#: corsMethodsRegex ``^([A-Za-z]+,?\s?)+$``.
_METHODS = re.compile(rf"(?:[A-Za-z]++,?+{_SP}?+)++")
#: parser.HeadersVariable ``^[A-Za-z0-9-_, ]*$`` (cors-allow-headers).
_HEADERS = re.compile(r"[A-Za-z0-9_, \-]*")
#: corsExposeHeadersRegex ``^(([A-Za-z0-9\-\_]+|\*),?\s?)+$``.
_EXPOSE = re.compile(rf"(?:(?:[A-Za-z0-9_\-]++|\*),?+{_SP}?+)++")
#: corsOriginRegex ``^([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null)?$`` (one origin of the
#: list): any lower-case scheme since ingress-nginx PR #11153 (``tauri://localhost``,
#: ``capacitor://localhost``), ``null`` since PR #12402 (a sandboxed page's Origin).
_ORIGIN = re.compile(r"(?:[a-z]+://(?:\*\.)?[A-Za-z0-9.\-]*(?::[0-9]+)?|\*|null)?", re.ASCII)
_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")


def _origin_list_valid(value: str) -> bool:
    """corsOriginRegexValidator ``^((((([a-z]+://)?(\\*\\.)?[A-Za-z0-9\\-.]*(:\\d+)?,?)|null)+)
    |\\*)?$`` on the value with its spaces removed (``ValidateRegex(..., true)``), decided by a
    set of automaton states (the regex's nested ``+`` backtracks exponentially in ``re``). A
    token is ``([a-z]+://)?(\\*\\.)?[host chars]*(:digits)?``, every part optional, tokens
    concatenated with optional commas between them (``null`` is host characters too)."""
    v = value.replace(" ", "")
    if v in ("", "*"):
        return True
    # States: "g": between parts of a token or tokens (accepting); "a": lower-case letters
    # read since a token began (a scheme, or host characters: "g" is in the set with it);
    # "c": the scheme's ":"; "c1": ":/"; "w": "*" of "*."; "p": ":" of a port; "d": its
    # digits (accepting).
    states = {"g"}
    for ch in v:
        nxt: set[str] = set()
        for st in states:
            if st in ("g", "d"):
                if st == "d" and ch in _DIGITS:
                    nxt.add("d")
                if ch in _SCHEME_CHARS:
                    nxt.add("a")
                if ch in _HOST_CHARS or ch == ",":
                    nxt.add("g")
                elif ch == "*":
                    nxt.add("w")
                elif ch == ":":
                    nxt.add("p")
            elif st == "a" and ch in _SCHEME_CHARS:
                nxt.add("a")
            elif st == "a" and ch == ":":
                nxt.add("c")
            elif st == "c" and ch == "/":
                nxt.add("c1")
            elif st == "c1" and ch == "/":
                nxt.add("g")
            elif st == "w" and ch == ".":
                nxt.add("g")
            elif st == "p" and ch in _DIGITS:
                nxt.add("d")
        if not nxt:
            return False
        states = nxt
    return "g" in states or "d" in states


def _origin_regex(origins: tuple[str, ...]) -> re.Pattern[str]:
    """template.go ``buildCorsOriginRegex`` / ``buildOriginRegex`` (no empty element here)."""
    parts = []
    for origin in origins:
        # Go's QuoteMeta and re.escape both write "*" as "\*"; the first becomes one label.
        parts.append("(" + re.escape(origin).replace(r"\*", r"[A-Za-z0-9\-]+", 1) + ")")
    return re.compile("(" + "|".join(parts) + ")$", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True, slots=True)
class Cors:
    """A location's CORS configuration (``enable-cors: "true"``)."""

    #: ``("*",)`` or the valid origins, as written.
    origins: tuple[str, ...]
    allow_methods: str = DEFAULT_METHODS
    allow_headers: str = DEFAULT_HEADERS
    allow_credentials: bool = True
    expose_headers: str = ""
    max_age: int = DEFAULT_MAX_AGE

    @property
    def any_origin(self) -> bool:
        return self.origins == ("*",)

    def _pattern(self) -> re.Pattern[str] | None:
        if self.any_origin or not self.origins:
            return None
        pat = _PATTERNS.get(self.origins)
        if pat is None:
            if len(_PATTERNS) > 1024:
                _PATTERNS.clear()
            pat = _PATTERNS[self.origins] = _origin_regex(self.origins)
        return pat

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request with this ``Origin`` ($http_origin:
        None when absent), or None when the location's CORS does not apply (``$cors`` unset)."""
        if self.any_origin:
            return "*"
        pat = self._pattern()
        if pat is None or origin is None or pat.search(origin) is None:
            return None
        return origin

    def headers(self, origin: str | None) -> list[tuple[bytes, bytes]] | None:
        """The headers nginx.tmpl's CORS block sets for a request with this ``Origin``, in its
        order, as ``(name, value)`` (names as the template spells them), or None when none
        apply. An empty ``Origin:`` is no exception: ``*`` answers it ``*`` ("set $http_origin
        *"), a list matches it with none of its alternatives (none is empty: ``parse_cors``
        skips an empty element), so ``$cors`` stays unset in nginx, no header of the block is
        set and the upstream's Access-Control-Allow-Origin passes (tests/test_h3_s34.py)."""
        allow = self.allowed_origin(origin)
        if allow is None:
            return None
        out: list[tuple[bytes, bytes]] = []
        if allow:
            out.append((b"Access-Control-Allow-Origin", allow.encode("latin-1")))
        if self.allow_credentials:
            out.append((b"Access-Control-Allow-Credentials", b"true"))
        out.append((b"Access-Control-Allow-Methods", self.allow_methods.encode("ascii")))
        out.append((b"Access-Control-Allow-Headers", self.allow_headers.encode("ascii")))
        if self.expose_headers:
            out.append((b"Access-Control-Expose-Headers", self.expose_headers.encode("ascii")))
        out.append((b"Access-Control-Max-Age", b"%d" % self.max_age))
        return out

    def preflight(self, method: str, origin: str | None) -> list[tuple[bytes, bytes]] | None:
        """The headers of the location's own 204 answer to this request, or None when it is
        not answered there (not ``OPTIONS``, or the Origin not allowed)."""
        if method != "OPTIONS":
            return None
        return self.headers(origin)


_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def merge(headers: list[tuple[bytes, bytes, bytes]],
          cors: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes, bytes]]:
    """``headers`` (raw name, lower-case name, value) with ``cors`` set as ``more_set_headers``
    sets them: any header of the same name removed, the CORS ones appended -- but for an empty
    value, which only removes (headers-more's ``ngx_http_set_header_helper``: an empty value
    clears the header; an add-headers / custom-headers entry of only spaces)."""
    names = {n.lower() for n, _ in cors}
    out = [h for h in headers if h[1] not in names]
    out.extend((n, n.lower(), v) for n, v in cors if v)
    return out


def parse_cors(annotations: Mapping[str, str], prefix: str,
               warn: Callable[[str, str], None]) -> Cors | None:
    """The location's Cors (None: ``enable-cors`` is not "true"), reporting each invalid value
    with ``warn(key, message)`` (the default is then used, as cors/main.go does; with CORS
    off too: the value would be wrong once it is turned on)."""
    def raw(name: str) -> str | None:
        return annotations.get(prefix + name)

    enabled = raw("enable-cors")
    if enabled is None:
        on = False
    else:
        b = parse_bool(enabled)
        if b is None:
            warn(prefix + "enable-cors",
                 f'invalid boolean {enabled!r}: must be "true" or "false"; using the default '
                 "false")
        on = bool(b)
    # Every value is read (and an invalid one reported) with CORS off too, as main.go's Parse
    # reads them all; the result is used only when enable-cors is "true".

    origins: tuple[str, ...] = ("*",)
    value = raw("cors-allow-origin")
    if value is not None:
        key = prefix + "cors-allow-origin"
        if not _origin_list_valid(value):
            warn(key, f"invalid origin list {value!r} (each an origin, scheme://host with a "
                 'lower-case scheme, optionally "*." before the host and a port, or "null", '
                 'separated by ","; or "*"); using the default "*"')
        elif normalize_string(value):
            found: list[str] = []
            for item in normalize_string(value).split(","):
                item = item.strip(" \t\n\v\f\r")
                if item == "*":
                    found = ["*"]
                    break
                if not item:
                    warn(key, "an empty origin in the list, skipped (ingress-nginx would "
                         "allow every Origin)")
                    continue
                if _ORIGIN.fullmatch(item) is None:
                    warn(key, f"origin {item!r} is not an origin (scheme://host[:port]) nor "
                         '"null"; skipped')
                    continue
                found.append(item)
            if not found and on:
                warn(key, "no valid origin in the list: no CORS header is sent")
            origins = tuple(found)

    def text(name: str, pattern: re.Pattern[str], default: str, what: str) -> str:
        value = raw(name)
        if value is None:
            return default
        norm = normalize_string(value)
        if not norm or pattern.fullmatch(value.replace(" ", "")) is None \
                or pattern.fullmatch(norm) is None:
            warn(prefix + name, f"invalid {what} {value!r}; using the default "
                 f"{default!r}" if default else f"invalid {what} {value!r}; ignored")
            return default
        return norm

    methods = text("cors-allow-methods", _METHODS, DEFAULT_METHODS, "method list")
    allow_headers = text("cors-allow-headers", _HEADERS, DEFAULT_HEADERS, "header list")
    expose = text("cors-expose-headers", _EXPOSE, "", "header list")

    credentials = True
    value = raw("cors-allow-credentials")
    if value is not None:
        b = parse_bool(value)
        if b is None:
            warn(prefix + "cors-allow-credentials",
                 f'invalid boolean {value!r}: must be "true" or "false"; using the default '
                 "true")
        else:
            credentials = b

    max_age = DEFAULT_MAX_AGE
    value = raw("cors-max-age")
    if value is not None:
        n = parse_int(value)
        if n is None:
            warn(prefix + "cors-max-age",
                 f"invalid integer {value!r}; using the default {DEFAULT_MAX_AGE}")
        else:
            max_age = n
    if not on:
        return None
    return Cors(origins, methods, allow_headers, credentials, expose, max_age)



def asgi_origin(headers: Iterable[Any] | None) -> str | None:
    """An ASGI scope's ``Origin`` as nginx's ``$http_origin`` reads it: the one line's value,
    or every line's joined by ", " (nginx >= 1.23); None when absent."""
    values = [bytes(v) for n, v in headers or () if bytes(n).lower() == b"origin"]
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


def asgi_merge(headers: Iterable[Any], cors: list[tuple[bytes, bytes]]) -> list[Any]:
    """``merge`` for an ASGI response's ``(name, value)`` headers (names in any case, bytes
    or str as an app may send them; an empty value only removes)."""
    names = {n.lower() for n, _ in cors}
    out = [h for h in headers
           if (h[0].encode("latin-1") if isinstance(h[0], str) else bytes(h[0])).lower()
           not in names]
    out.extend((n.lower(), v) for n, v in cors if v)
    return out
