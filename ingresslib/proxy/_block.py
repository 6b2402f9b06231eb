"""The ConfigMap's nginx ``map`` lists: ``block-user-agents``, ``block-referers`` and
``skip-access-log-urls``.

ingress-nginx writes each item of these lists as a line of an nginx ``map`` (nginx.tmpl,
internal/ingress/controller/config/config.go ``BlockUserAgents``/``BlockReferers``/
``SkipAccessLogURLs``):

- ``map $http_user_agent $block_ua { default 0; {{ range $ua := $cfg.BlockUserAgents }}{{
  trimSpace $ua }} 1; {{ end }} }`` and ``map $http_referer $block_ref { ... }``, with, in every
  server block (the hosts', the www-redirect servers', the catch-all ``_``), before the
  server's locations: ``if ($block_ua) { return 403; }`` and ``if ($block_ref) { return 403;
  }``. An ``if`` of the server block runs in nginx's server-rewrite phase: before the
  location is even found, so before ssl-redirect (lua, the location's rewrite phase), the
  access phase (``block-cidrs``' ``deny``, allow lists, auth) and the limits (preaccess).
  template/configmap.go ``ReadConfig`` splits the value with ``splitAndTrimSpace(val, ",")``.
- ``map $request_uri $loggable { {{ range $reqUri := $cfg.SkipAccessLogURLs }}{{ $reqUri }}
  0;{{ end }} default 1; }`` with ``access_log ... if=$loggable``: a request whose
  ``$request_uri`` (the target as the client sent it, query included) is an item is not logged.
  ReadConfig: ``strings.Split(val, ",")``.

One item is one nginx map key (ngx_http_map_module.c ``ngx_http_map``): ``~re`` a
case-sensitive PCRE, ``~*re`` a case-insensitive one, anything else an exact string compared
ignoring ASCII case (``ngx_hash_add_key`` lower-cases the keys and ``ngx_http_map_find``
looks up ``ngx_hash_strlow`` of the value); the exact strings are looked up first, then the
regexes in order, searched (unanchored) on the value as received; an empty value is never
searched by a regex. A regex runs as ``auth-tls-match-cn``'s does (proxy/_clientcert.py:
``pcre_braces`` and the ``regex`` module), on the value's bytes read as Latin-1 with ASCII
classes (PCRE without UTF: ``\\w`` is ASCII). One lookup (all its regexes) gets one match
timeout; running out of it ends the lookup with the map's default (no match), as PCRE's match
limit ends nginx's (``ngx_http_map_find`` returns NULL on the regex's error).

The item is written into nginx's configuration unquoted, so nginx's tokenizer reads it
(ngx_conf_file.c ``ngx_conf_read_token``): a ``"..."``/``'...'`` item is its inside; ``\\"``,
``\\'``, ``\\\\`` are the character, ``\\t``/``\\r``/``\\n`` the control characters; a space
outside quotes splits it into two words ("invalid number of the map parameters"), as ";"
and "{" (not right after "$") do; "}" ends no word; an item starting with "#" is a comment
(the template's whole line: no key at all). Everything
nginx refuses -- that, a regex PCRE cannot compile, an empty item, ``default`` (the map's
second default: "duplicate default map parameter"), ``include``, an exact string given twice
("conflicting parameter") -- makes ``nginx -t`` fail, so ingress-nginx applies no new
configuration at all: refused here (ValueError; the ConfigMap reader reports it as an
error), as ingresslib refuses every value nginx would.
"""

from __future__ import annotations

import functools
from time import monotonic as _monotonic
from collections.abc import Iterable, Sequence
from typing import Any

import regex as _regex

from ._clientcert import MATCH_TIMEOUT, pcre_braces

__all__ = ["MapList", "compile_map", "split_block_list", "split_skip_urls", "blocked_request",
           "blocked_scope", "skip_logging"]


class MapList:
    """One compiled nginx ``map`` list (:func:`compile_map`): ``match(value)``."""

    __slots__ = ("exact", "regexes")

    def __init__(self, exact: frozenset[bytes], regexes: tuple[Any, ...]) -> None:
        self.exact = exact
        self.regexes = regexes

    def match(self, value: bytes | None) -> bool:
        """Whether ``value`` (a header's value or ``$request_uri``; None: absent, nginx's
        empty variable) is a key of the map."""
        if value is None:
            value = b""
        if value.lower() in self.exact:  # (bytes.lower: ASCII only, as ngx_hash_strlow)
            return True
        if not value or not self.regexes:
            return False
        text = value.decode("latin-1")
        # One MATCH_TIMEOUT for the whole lookup, not one per regex: a value that makes each
        # of N regexes backtrack for its own 50 ms held the event loop N x 50 ms per request
        # (twice: User-Agent and Referer). A regex that runs out of it ends the lookup with
        # the map's default, as PCRE's match limit does in nginx (ngx_http_map_find: "n =
        # ngx_http_regex_exec(...); ... /* NGX_ERROR */ return NULL;", the later regexes not
        # tried; ngx_http_map_variable then takes the default value).
        deadline = _monotonic() + MATCH_TIMEOUT
        left = MATCH_TIMEOUT
        for rx in self.regexes:
            try:
                if rx.search(text, timeout=left) is not None:
                    return True
            except TimeoutError:
                return False
            left = deadline - _monotonic()
            if left <= 0:
                return False
        return False


def _token(item: str) -> str | None:
    """The one word nginx's tokenizer reads from ``item`` (ValueError otherwise); None for
    an item nginx reads as a comment."""
    out: list[str] = []
    i, n = 0, len(item)
    quote = item[0] if item[:1] in ("\"", "'") else ""
    if quote:
        i = 1
    elif item[:1] == "#":
        # ngx_conf_read_token, at the start of a word: "case '#': sharp_comment = 1;": the
        # rest of the template's line (the item and its " 1;") is a comment, no key at all.
        return None
    elif item[:1] in ("{", "}"):
        raise ValueError(f"{item!r}: nginx reads {item[0]!r} at the start of a word as a "
                         "block's brace (\"unexpected\"); quote the whole item")
    #: The previous character was an unescaped "$" (ngx_conf_read_token's ``variable``: a
    #: "{" right after it is part of the word, "${name}").
    variable = False
    while i < n:
        c = item[i]
        if c == "\\" and i + 1 == n:
            raise ValueError(f"{item!r}: a backslash at the end escapes the space after the "
                             "item (nginx reads one word, an invalid map line)")
        if c == "\\" and i + 1 < n:
            variable = False
            nxt = item[i + 1]
            if nxt in "\"'\\":
                out.append(nxt)
            elif nxt in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
            else:
                out.append(c + nxt)
            i += 2
            continue
        if quote and c == quote:
            if item[i + 1:]:
                raise ValueError(f"{item!r}: text after the closing quote (nginx reads it as "
                                 "a second word: \"unexpected\" or an invalid map line)")
            return "".join(out)
        # Inside a word only a space, ";" and "{" (not after "$") end it; "}" does not.
        if not quote and (c in " \t\r\n;" or (c == "{" and not variable)):
            raise ValueError(f"{item!r}: nginx reads {c!r} as the end of the word (the map "
                             "line becomes invalid); quote the whole item (\"~*a b\") or "
                             "write a space as \\s in a regex")
        variable = c == "$" and not quote
        out.append(c)
        i += 1
    if quote:
        raise ValueError(f"{item!r}: an unclosed quote")
    return "".join(out)


@functools.lru_cache(maxsize=32)
def compile_map(items: tuple[str, ...], what: str = "map") -> MapList:
    """The :class:`MapList` of ``items`` (each as written in the ConfigMap, trimmed);
    ValueError naming ``what`` and the item when nginx would refuse the map."""
    exact: set[bytes] = set()
    regexes: list[Any] = []
    for item in items:
        if not item:
            raise ValueError(f"{what}: an empty item (nginx refuses the map line: \"invalid "
                             "number of the map parameters\")")
        try:
            key = _token(item)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
        if key is None:
            continue  # a comment in nginx's configuration: no key
        if key in ("default", "include"):
            raise ValueError(f"{what}: {item!r} is a word nginx's map reserves (\"default\": "
                             "a second default, which nginx refuses; \"include\": a file); "
                             "write it as \\\\" + key)
        raw = key.encode("utf-8").decode("latin-1")  # the bytes nginx reads, one char each
        if raw.startswith("~"):
            caseless = raw.startswith("~*")
            pattern = raw[2:] if caseless else raw[1:]
            flags = _regex.ASCII | (_regex.IGNORECASE if caseless else 0)
            try:
                regexes.append(_regex.compile(pcre_braces(pattern), flags))
            except _regex.error as e:
                raise ValueError(f"{what}: {item!r} is not a valid regex ({e}; nginx -t "
                                 "fails, and ingress-nginx keeps its previous configuration)"
                                 ) from None
            continue
        if raw.startswith("\\"):
            raw = raw[1:]   # ngx_http_map: "if (value[0].data[0] == '\\') { ...data++; }"
        low = raw.encode("latin-1").lower()
        if low in exact:
            raise ValueError(f"{what}: {item!r} is given twice (nginx's map compares these "
                             "ignoring case and refuses the second: \"conflicting parameter\")")
        exact.add(low)
    return MapList(frozenset(exact), tuple(regexes))


def split_block_list(value: str) -> tuple[str, ...]:
    """``block-user-agents`` / ``block-referers``: configmap.go ``splitAndTrimSpace(val,
    ",")`` (``strings.FieldsFunc``: no empty items; each ``strings.TrimSpace``-d)."""
    return tuple(p.strip() for p in value.split(",") if p)


def split_skip_urls(value: str) -> tuple[str, ...]:
    """``skip-access-log-urls``: configmap.go ``strings.Split(val, ",")``; nginx's tokenizer
    drops the spaces around each item in the map line. "" is no list."""
    if not value:
        return ()
    return tuple(p.strip(" \t\r\n") for p in value.split(","))


def _first(items: Iterable[Any], name: bytes) -> bytes | None:
    for item in items:
        if item[1] == name:
            return bytes(item[2])
    return None


def _joined(values: Sequence[bytes]) -> bytes | None:
    return b", ".join(values) if values else None


def _check(settings: Any, user_agent: bytes | None, referer: bytes | None) -> bool:
    ua = settings.block_user_agents
    if ua and compile_map(ua, "block_user_agents").match(user_agent):
        return True
    ref = settings.block_referers
    return bool(ref) and compile_map(ref, "block_referers").match(referer)


def blocked_request(settings: Any, items: list[Any]) -> bool:
    """Whether the proxy core's request (h11's ``(raw_name, name, value)`` header triples) is
    refused by ``block-user-agents``/``block-referers`` (the caller checked that one is set).
    ``$http_user_agent`` is the first User-Agent line (ngx_http_request.c
    ``ngx_http_process_user_agent``: "if (r->headers_in.user_agent) { return NGX_OK; }");
    ``$http_referer`` every Referer line joined by ``", "`` (nginx >= 1.23 chains the lines
    of ``ngx_http_process_header_line`` headers)."""
    ref = [bytes(i[2]) for i in items if i[1] == b"referer"]
    return _check(settings, _first(items, b"user-agent"), _joined(ref))


def _bytes(v: Any) -> bytes:
    # (a server's odd header list: a str name or value is read as its Latin-1 bytes)
    return v.encode("latin-1", "replace") if isinstance(v, str) else bytes(v)


def blocked_scope(settings: Any, headers: Iterable[Any]) -> bool:
    """:func:`blocked_request` for an ASGI scope's ``[name, value]`` headers."""
    ua: bytes | None = None
    ref: list[bytes] = []
    for name, value in headers:
        low = _bytes(name).lower()
        if low == b"user-agent":
            if ua is None:
                ua = _bytes(value)
        elif low == b"referer":
            ref.append(_bytes(value))
    return _check(settings, ua, _joined(ref))


def skip_logging(settings: Any, request_uri: bytes) -> bool:
    """Whether ``skip-access-log-urls`` keeps a request with this ``$request_uri`` out of the
    access log (the caller checked the list is set)."""
    return compile_map(settings.skip_access_log_urls, "skip_access_log_urls").match(request_uri)
