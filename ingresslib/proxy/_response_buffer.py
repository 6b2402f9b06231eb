"""``proxy-buffer-size``, ``proxy-buffering``, ``proxy-buffers-number`` and
``proxy-max-temp-file-size``: how much of an upstream's response the proxy holds.

ingress-nginx writes, per location (nginx.tmpl)::

    proxy_buffering     {{ $location.Proxy.ProxyBuffering }};
    proxy_buffer_size   {{ $location.Proxy.BufferSize }};
    proxy_buffers       {{ $location.Proxy.BuffersNumber }} {{ $location.Proxy.BufferSize }};
    proxy_max_temp_file_size {{ $location.Proxy.ProxyMaxTempFileSize }};

from the annotations, each falling back to the ConfigMap's key (annotations/proxy/main.go: "if
err != nil { config.BufferSize = defBackend.ProxyBufferSize }"; config.go defaults
``proxy-buffering: "off"``, ``proxy-buffer-size: "4k"``, ``proxy-buffers-number: 4``,
``proxy-max-temp-file-size: "1024m"``). Here:

* ``proxy-buffer-size`` bounds the upstream's response head (``head_limit``): nginx reads the
  status line and headers into one buffer of that size (ngx_http_upstream_process_header: "if
  (u->buffer.last == u->buffer.end) { ngx_log_error(NGX_LOG_ERR, ... "upstream sent too big
  header"); ngx_http_upstream_next(r, u, NGX_HTTP_UPSTREAM_FT_INVALID_HEADER); return; }"):
  a head past it is an invalid response, a 502 (``$upstream_status`` 502) or, with
  ``proxy-next-upstream`` listing ``invalid_header``, the next endpoint. The bytes counted are
  the head's raw bytes, whole or in many reads (the reader's incomplete-head limit is set to
  it: one length check per read of the head). Each head by itself: after a 1xx head nginx
  moves the bytes that follow to the buffer's start (ngx_http_upstream_process_early_hints:
  "u->buffer.pos = u->buffer.start; u->buffer.last = ngx_movemem(...)"), so a 103 Early
  Hints of 2 KB before a final head of 3 KB passes a 4k buffer. All the heads before the body
  together are bounded by ``ProxySettings.max_response_header_size`` (64 KiB; or
  proxy-buffer-size if larger): an upstream sending 1xx heads for ever gets 502, not a
  request held with nothing sent. The body is no head: once the final head is in, the
  reader's limit is ``BODY_LINE_LIMIT`` (a chunk line or trailers arriving in pieces).
* ``proxy-buffering: "on"`` lets the driver read the upstream ahead of a slow client, up to
  ``proxy-buffers-number`` x ``proxy-buffer-size`` plus ``proxy-max-temp-file-size`` (nginx
  writes the part past its buffers to a temporary file; ingresslib holds it in memory, at most
  ``ProxySettings.response_buffering_limit`` per response, 8 MiB by default): the upstream's
  connection is released (pooled) once the response is read whole, not once the client took
  it. The core says how much per response (``ClientConnection.response_buffer``), the driver
  (``ProxyServer``) holds it. An upstream's ``X-Accel-Buffering: no`` turns it off for that
  response, ``yes`` on (ngx_http_upstream_process_buffering: a value of ``no`` / ``yes`` in any
  case; the proxy module sets ``change_buffering``); the header is never passed to the client
  (nginx's default proxy_hide_header list).
* invalid values are reported and the ConfigMap's (else the default) applies, as the
  annotations' parser falls back to ``defBackend``. A value nginx would refuse in its
  configuration test (a buffer size of 0, fewer than 2 buffers: "there must be at least 2
  proxy_buffers") is refused the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from .._goparse import parse_int
from ._location_extras import one_of
from ._settings import parse_size

__all__ = ["BODY_LINE_LIMIT", "BUFFER_ANNOTATIONS", "parse_buffering", "parse_buffer_size",
           "parse_buffers_number", "parse_max_temp_file_size", "response_buffer",
           "accel_buffer", "log_too_big", "ahead_fits", "ahead_release"]

#: The upstream reader's limit once the final response head is in (``_connection``): a chunk
#: line or trailer section of the body still incomplete in the buffer may hold this many bytes
#: (``max_response_header_size``'s default, the limit before ``proxy-buffer-size`` bounded the
#: head). nginx parses the body's chunk lines as they come (ngx_http_parse_chunked): a
#: ``proxy-buffer-size`` of "1k" must not cut a chunked response with a 2 KB chunk extension.
BODY_LINE_LIMIT = 65536

#: The annotations (and ConfigMap keys) read here.
BUFFER_ANNOTATIONS = ("proxy-buffering", "proxy-buffer-size", "proxy-buffers-number",
                      "proxy-max-temp-file-size")


def parse_buffering(value: str) -> str:
    """``proxy-buffering``: ``"on"`` or ``"off"`` (trimmed, case-sensitive, as ingress-nginx's
    ``ValidateOptions([]string{"on", "off"}, true, true)``)."""
    return one_of(value, ("on", "off"), "proxy-buffering")


def parse_buffer_size(value: str) -> int:
    """``proxy-buffer-size``: an nginx size, 1 byte or more (a buffer of 0 holds no head)."""
    n = parse_size(value)
    if n < 1:
        raise ValueError(f"invalid proxy-buffer-size {value!r}: must be 1 byte or more")
    return n


def parse_buffers_number(value: str) -> int:
    """``proxy-buffers-number``: an integer (Go's ``strconv.Atoi``), 2 or more (nginx: "there
    must be at least 2 "proxy_buffers"")."""
    n = parse_int(value)
    if n is None:
        raise ValueError(f"invalid proxy-buffers-number {value!r}: not an integer")
    if n < 2:
        raise ValueError(f"invalid proxy-buffers-number {value!r}: must be 2 or more")
    return n


def parse_max_temp_file_size(value: str) -> int:
    """``proxy-max-temp-file-size``: an nginx size, 0 included (no spill past the buffers)."""
    return parse_size(value)


def response_buffer(on: bool, number: int, size: int, temp: int, limit: int) -> int:
    """The bytes of one response a driver may hold ahead of the client (0: none, stream)."""
    if not on:
        return 0
    return number * size + min(temp, max(limit - number * size, 0))


def accel_buffer(opts: Any, value: bytes, current: int, limit: int) -> int:
    """``X-Accel-Buffering: value`` from the upstream, ``current`` the response's
    buffering so far (``response_buffer``): ``no`` turns it off, ``yes`` on with the
    location's buffers, anything else changes nothing (ngx_http_upstream_process_buffering)."""
    v = value.lower()
    if v == b"no":
        return 0
    if v == b"yes":
        return response_buffer(True, opts.proxy_buffers_number, opts.proxy_buffer_size,
                               opts.proxy_max_temp_file_size, limit)
    return current


def log_too_big(logger: logging.Logger, limit: int, endpoint: tuple[str, int],
                host: str | None, request: str, what: str = "proxy-buffer-size") -> None:
    """nginx's error-log line for a head past ``proxy-buffer-size`` (``what``: the limit
    passed, when it is the 1xx heads' and the final head's together)."""
    logger.error("upstream sent too big header while reading response header from upstream "
                 "(%s %d), request: \"%s\", upstream: \"%s:%d\", host: \"%s\"",
                 what, limit, request, endpoint[0], endpoint[1], host or "")


def ahead_fits(server: Any, down: Any, size: int, per_response: int) -> bool:
    """The driver's read-ahead (``ProxyServer``): may the client connection ``down``, whose
    write buffer holds ``size`` bytes, go on reading its upstream? Not past the response's
    own bound (``per_response``, ``conn.response_buffer``), nor past the server's
    ``ProxySettings.response_buffering_budget`` for every connection reading ahead together
    (``server.ahead_held``: the sum of each one's ``down.held``, its write buffer's size when
    last looked at, given back by :func:`ahead_release`). A connection past either streams
    again (its upstream read as fast as its client takes the response), as with
    ``proxy-buffering: "off"``; nginx would spill to temporary files (its memory is bounded
    by its buffers per request)."""
    held = server.ahead_held + size - down.held
    server.ahead_held = held
    down.held = size
    return size <= per_response and held <= server.proxy.settings.response_buffering_budget


def ahead_release(server: Any, down: Any) -> None:
    """``down``'s client drained its write buffer (or went away): its share of the
    read-ahead budget is given back."""
    server.ahead_held -= down.held
    down.held = 0
