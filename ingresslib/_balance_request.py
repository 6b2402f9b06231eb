"""The request as balancers see it: ``RequestContext`` (method, host, path, query, headers,
client address; headers, cookies and query arguments parsed on first use), and the header and
cookie readers it shares with canary (§8) - ``header_value``, ``cookie_value``, ``_pairs``."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from ._normalize import ascii_lower

__all__ = [
    "RequestContext",
    "Headers",
    "HeaderItems",
    "HeaderValue",
    "H11_HEADERS",
    "header_value",
    "cookie_value",
    "EMPTY_REQUEST",
]

#: A header value as the router reads it: ``str``, or bytes read as latin-1 (``bytearray`` and
#: ``memoryview`` too: an ASGI server or middleware may hand one over; see :func:`_text`).
HeaderValue = str | bytes | bytearray | memoryview


class HeaderItems(Protocol):
    """A header object read through its ``items()``: ``http.client.HTTPMessage`` (an
    ``http.server`` handler's ``self.headers``, whose iteration yields names only; see
    :func:`_pairs`)."""

    def items(self) -> Iterable[tuple[str | bytes, HeaderValue]]: ...

    def __iter__(self) -> Iterator[object]: ...


#: What ``Router.route(headers=...)`` takes (CONTRACT: "a mapping or an iterable of (name,
#: value) pairs (str or bytes)"; docs/router.md: ``bytearray``/``memoryview`` values,
#: ``h11.Headers``, ``http.client.HTTPMessage``, a generator). Mapping keys are invariant, so
#: str-keyed, bytes-keyed and mixed mappings are each a member.
Headers = (Mapping[str, HeaderValue] | Mapping[bytes, HeaderValue]
           | Mapping[str | bytes, HeaderValue]
           | Iterable[tuple[str | bytes, HeaderValue]] | HeaderItems)
#: One ``(name, value)`` pair as the readers below take it: as the caller gave it (a
#: ``bytearray``/``memoryview`` name or value too, read by :func:`_name_bytes`/:func:`_text`).
_Pair = tuple[Any, Any]


def _h11_headers_type() -> Any:
    """h11's header list class (what the proxy passes) when it keeps the ``_full_items``
    ``(raw, lower-cased, value)`` triples the fast paths read, else None.

    That attribute is h11's internal: a release that renamed it would fail requests with an
    AttributeError, and one that changed its meaning (another order, names not lower-cased)
    would have headers misread, a canary header not seen. ``proxy._chunked``'s
    ``check_h11_internals`` probes this for the proxy, but importing it costs the whole proxy
    (120 ms) where the router needs none of it: the same questions are asked here (tens of
    µs), and a mismatch costs speed only: h11's header lists are then read through their
    public ``(lower-cased name, value)`` items, as any sequence of pairs."""
    try:
        import h11
        from h11._headers import Headers
        hs = h11.Request(method="GET", target="/",
                         headers=[("Host", "a"), ("X-Key", "B c")]).headers
        expect = [(b"Host", b"host", b"a"), (b"X-Key", b"x-key", b"B c")]
        if (type(hs) is Headers and hs._full_items == expect
                and list(hs) == [(b"host", b"a"), (b"x-key", b"B c")]
                and Headers(expect)._full_items == expect):
            return Headers
    except Exception:  # any change of h11's internals: the public reading
        pass
    return None


_H11Headers: Any = _h11_headers_type()
#: ``h11.Headers`` (or None: see :func:`_h11_headers_type`): header lists of this type are
#: read through their lower-cased ``(raw, lower, value)`` triples.
H11_HEADERS: Any = _H11Headers


def _text(value: Any) -> Any:
    """A header value that is not ``bytes`` or ``str``, as the router reads it: a ``bytearray``
    or ``memoryview`` (what an ASGI server or middleware may hand over) as its bytes, latin-1
    decoded as ``bytes`` values are; anything else as it is. Off the hot path: callers decode
    ``bytes`` themselves first, and ``h11.Headers`` (the proxy's) never holds anything else:
    h11 makes every value ``bytes``, so its reads need no check."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return value


def _name_bytes(name: Any) -> bytes | None:
    """A header name that is neither ``bytes`` nor ``str``, lower-cased as bytes: a
    ``bytearray`` or ``memoryview`` (an ASGI middleware's) is its bytes; anything else None
    (matches nothing)."""
    if isinstance(name, (bytes, bytearray, memoryview)):
        return bytes(name).lower()
    return None


def _pairs(headers: Headers) -> Iterable[_Pair]:
    """``headers`` as ``(name, value)`` pairs: a mapping-like header object that is no
    ``Mapping`` (``http.client.HTTPMessage``, the ``self.headers`` of an ``http.server``
    handler: an ``email.message.Message``, whose iteration yields names only) through its
    ``items()``, which keeps repeated headers; an iterable of pairs as it is, a ``list`` or
    ``tuple`` subclass too, whatever else it has called ``items``."""
    items = getattr(headers, "items", None)
    if callable(items) and not isinstance(headers, (list, tuple)):
        return items()  # type: ignore[no-any-return]
    # (A Mapping or HeaderItems never gets here: each has an ``items``.)
    return headers  # type: ignore[return-value]


def header_value(headers: Headers, name: str, bname: bytes, join: str | None = None
                 ) -> str | None:
    """A header's value straight from the raw headers (no dict is built).

    ``name``/``bname``: the lower-case name as str and bytes; request names match
    case-insensitively. The *first* occurrence counts, unless ``join`` is given (every
    occurrence joined by it: nginx's ``$http_*`` variables join with ``", "``, ``Cookie`` with
    ``"; "``). Fast paths:
    an ``h11.Headers`` object (what the proxy passes; names already lower case) and lists of
    lower-case byte pairs, where a header costs one ``==``. Other than in ``h11.Headers``
    (whose values h11 makes ``bytes``), a ``bytearray`` or ``memoryview`` value is read as its
    bytes, as a ``bytes`` one (:func:`_text`); so is one in an ``h11.Headers`` built by hand
    (its constructor takes the triples as given). A ``bytearray`` or ``memoryview`` *name*
    matches as its bytes do. A ``str`` value's surrounding blanks (spaces, tabs: OWS) are no
    part of it, as on the wire (h11 strips them, nginx skips them): ``" always "`` reads
    ``always``; a bytes value is taken as the server that parsed it gave it.
    """
    t = type(headers)
    items: Iterable[_Pair]
    if t is _H11Headers:
        # h11.Headers: (raw name, lower-case name, value) triples, bytes when h11 made them.
        full = headers._full_items  # type: ignore[union-attr]
        if join is None:
            for _, k, v in full:
                if k == bname:
                    return v.decode("latin-1") if type(v) is bytes else _text(v)
            return None
        vals = [v.decode("latin-1") if type(v) is bytes else _text(v)
                for _, k, v in full if k == bname]
        return join.join(vals) if vals else None
    if t is list or t is tuple:
        items = headers  # type: ignore[assignment]
    elif t is dict:
        items = headers.items()  # type: ignore[union-attr]
    else:
        items = headers.items() if isinstance(headers, Mapping) else _pairs(headers)
    ln = len(name)
    found: list[str] = []
    for k, v in items:
        if k == bname or (len(k) == ln and (
                k.lower() == bname if type(k) is bytes else k.lower() == name
                if isinstance(k, str) else _name_bytes(k) == bname)):
            # A text value without the blanks around it (OWS), as h11 and nginx read a header
            # line ("OWS field-value OWS"; ngx_http_parse_header_line's sw_space_before_value
            # and sw_space_after_value). Bytes are the value as a server parsed it (h11's and
            # ASGI servers' come stripped): taken as given.
            sv = (v.decode("latin-1") if type(v) is bytes else v.strip(" \t") if type(v) is str
                  else _text(v))
            if join is None:
                return sv
            found.append(sv)
    return join.join(found) if found else None  # type: ignore[union-attr]


def cookie_value(headers: Headers, cookie: str, fold: bool = False) -> str | None:
    """The first cookie named ``cookie``.

    ``fold=False`` (session affinity, as lua-resty-cookie's ``cookie:get(name)``, a table
    lookup): the name is case-sensitive. ``fold=True`` (canary cookie and ``$cookie_*`` in
    ``upstream-hash-by``, both nginx variables): nginx's ``$cookie_NAME`` exactly
    (:func:`_nginx_cookie_pattern`): the name matches case-insensitively
    ("if (ngx_strncasecmp(start, name->data, name->len) != 0) goto skip;"), "," separates
    pairs too, the value is not trimmed at its end.
    """
    if fold:
        # Each Cookie line on its own, as nginx walks the header's lines ("for (h = headers;
        # h; h = h->next)"): "\n" cannot occur inside a header value, so it marks the lines.
        lines = header_value(headers, "cookie", b"cookie", join="\n")
        if not lines:
            return None
        # ASCII letters only, as ngx_strncasecmp: str.lower() would also fold "É" to "é".
        want = ascii_lower(cookie)
        low = ascii_lower(lines)
        if want not in low:
            return None
        pattern = _nginx_cookie_pattern(want)
        if "\n" not in lines:
            m = pattern.match(low)
            return None if m is None else lines[m.start(1):m.end(1)]
        start = 0
        for line in lines.split("\n"):
            # ``low`` has the same length as ``lines`` (ascii_lower maps each character to one).
            m = pattern.match(low, start, start + len(line))
            if m is not None:
                return lines[m.start(1):m.end(1)]
            start += len(line) + 1
        return None
    raw = header_value(headers, "cookie", b"cookie", join="; ")
    if not raw:
        return None
    if cookie not in raw:
        return None
    for part in raw.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == cookie:
            return v.strip()
    return None


@functools.lru_cache(maxsize=256)
def _nginx_cookie_pattern(want: str) -> re.Pattern[str]:
    """nginx's ``$cookie_NAME`` lookup on one ``Cookie`` line, as one anchored regex (run on the
    ASCII-lower-cased line; ``want`` is the lower-cased name). A port of
    ``ngx_http_parse_multi_header_lines`` (nginx/nginx ``src/http/ngx_http_parse.c``), quirks
    included, since ingress-nginx's canary cookie and ``upstream-hash-by`` read that variable:

    * a pair starting with the name ("ngx_strncasecmp(start, name->data, name->len)"), spaces,
      then "=" is the answer: spaces skipped, the value runs to the next ";" only ("*last !=
      ';'"), trailing blanks and commas included;
    * a pair starting with the name whose next non-space character is not "=" has consumed
      that character ("if (start == end || *start++ != '=') goto skip;") before skipping;
    * skipping goes past the next ";" *or* "," ("if (ch == ';' || ch == ',') break;") and the
      spaces (not tabs) after it.

    So ``a=1, canary=always`` finds ``always``, ``canary=always ;`` reads ``"always "`` and
    ``canary; canary=always`` finds nothing. Possessive repeats: nginx never backtracks."""
    name = re.escape(want)
    return re.compile(
        rf"(?:{name} *+[^=][^;,]*+[;,] *+|(?!{name})[^;,]*+[;,] *+)*+{name} *+= *+([^;]*)")


class RequestContext:
    """What a balancer may look at. Headers, cookies and query arguments are parsed on first use
    only, so balancers that do not read them cost nothing.

    Header names match case-insensitively; a ``_`` in the *wanted* name stands for ``-`` (nginx's
    ``$http_x_user`` reads ``X-User``). Request header names containing ``_`` are not rewritten
    (nginx ignores them by default, and the proxy drops them). Cookie names are case-sensitive;
    the first cookie of a name wins (nginx).
    """

    __slots__ = ("method", "host", "path", "query", "client_ip", "retry", "_raw", "_headers",
                 "_cookies", "_args")

    def __init__(self, method: str = "GET", host: str = "", path: str = "/",
                 headers: Headers = (),
                 client_ip: str | None = None, query: str | None = None,
                 retry: bool = False) -> None:
        self.method = method
        self.host = host
        self.path = path
        self.query = query
        self.client_ip = client_ip
        #: True for contexts ``Router.next_endpoint`` makes when it was not given the request
        #: (``request=``; no headers are known then).
        self.retry = retry
        self._raw = headers
        self._headers: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None
        self._args: dict[str, str] | None = None

    @property
    def request_uri(self) -> str:
        """nginx ``$request_uri``: path plus ``?query`` when a query was given."""
        return self.path if self.query is None else f"{self.path}?{self.query}"

    def headers(self) -> dict[str, str]:
        """All headers, names lower-cased (a ``_`` in a request's header name is kept: see the
        class), repeats joined by ``, `` (``Cookie`` repeats by ``; ``, RFC 9113 §8.2.3). A
        ``bytearray`` or ``memoryview`` name or value reads as its bytes (latin-1)."""
        h = self._headers
        if h is None:
            h = {}
            raw = self._raw
            items: Iterable[_Pair]
            if type(raw) is _H11Headers:
                # h11.Headers, read without its per-item __getitem__
                items = [(k, v) for _, k, v in raw._full_items]  # type: ignore[union-attr]
            else:
                items = raw.items() if isinstance(raw, Mapping) else _pairs(raw)
            for name, value in items:
                n = (name.decode("latin-1") if isinstance(name, bytes)
                     else name if isinstance(name, str) else _text(name))
                n = n.lower()
                v = (value.decode("latin-1") if isinstance(value, bytes)
                     else value.strip(" \t") if isinstance(value, str)  # OWS: header_value
                     else _text(value))
                old = h.get(n)
                if old is None:
                    h[n] = v
                else:
                    h[n] = f"{old}; {v}" if n == "cookie" else f"{old}, {v}"
            self._headers = h
        return h

    def header(self, name: str) -> str | None:
        """One header's value; ``name`` as written in an annotation (``_`` means ``-``, as in
        nginx's ``$http_x_user``)."""
        return self.headers().get(name.lower().replace("_", "-"))

    def cookies(self) -> dict[str, str]:
        """The request's cookies, name -> value, from its ``Cookie`` header(s); the first of a
        repeated name wins. Read it, do not change it (it is cached)."""
        c = self._cookies
        if c is None:
            c = {}
            raw = self.headers().get("cookie")
            if raw:
                for part in raw.split(";"):
                    k, sep, v = part.strip().partition("=")
                    if sep and k and k not in c:
                        c[k] = v.strip()
            self._cookies = c
        return c

    def cookie(self, name: str) -> str | None:
        """The value of the cookie named exactly ``name``, or None."""
        return self.cookies().get(name)

    def arg(self, name: str) -> str | None:
        """nginx ``$arg_name``: the raw (still escaped) value of the first ``name=``, the name
        matched case-insensitively (A-Z only). nginx's ``ngx_http_arg`` (nginx/nginx
        ``src/http/ngx_http_parse.c``) takes a match only where "(p == r->args.data || *(p - 1)
        == '&') && *(p + len) == '='", so in ``flag&flag=1`` the bare ``flag`` is passed over
        and ``$arg_flag`` is ``1``. A name that only ever appears bare reads as ``""`` (nginx
        has no value then, which renders as empty text)."""
        a = self._args
        if a is None:
            a = {}
            bare: list[str] = []
            if self.query:
                for part in self.query.split("&"):
                    k, eq, v = part.partition("=")
                    if not k:
                        continue
                    k = ascii_lower(k)
                    if eq:
                        a.setdefault(k, v)
                    else:
                        bare.append(k)
            for k in bare:
                a.setdefault(k, "")
            self._args = a
        return a.get(ascii_lower(name))


#: The context handed to balancers whose ``uses_request`` is False, and to retries.
EMPTY_REQUEST = RequestContext()
