"""ingress-nginx's ``enable-brotli`` (and ``brotli-level``, ``brotli-min-length``,
``brotli-types``): response compression as google/ngx_brotli's filter applies it. Sans-IO;
proxy/_gzip.py ``start_gzip`` (the proxy core and IngressASGI's ``gzip_send``) calls in here
only when ``enable_brotli`` is on. The Python binding of google/brotli (the ``Brotli``
package, pyproject.toml's ``brotli`` extra) is imported on the first such call, never by
``import ingresslib.proxy``; without it there is no brotli (a ConfigMap warning says so,
_config.py) and gzip works as before.

The reference:

- ingress-nginx internal/ingress/controller/config/config.go: ``EnableBrotli bool
  `json:"enable-brotli"``` (default false), ``BrotliLevel int`` (4), ``BrotliMinLength int``
  (20), ``BrotliTypes string`` (``brotliTypes``: proxy/_gzip.py ``BROTLI_TYPES``).
- nginx.tmpl: "{{ if $cfg.EnableBrotli }} brotli on; brotli_comp_level
  {{ $cfg.BrotliLevel }}; brotli_min_length {{ $cfg.BrotliMinLength }}; brotli_types
  {{ $cfg.BrotliTypes }}; {{ end }}" (no ``brotli_window``: 512k, lgwin 19). ``gzip_vary on``
  is written only in the use-gzip block.
- google/ngx_brotli filter/ngx_http_brotli_filter_module.c ``ngx_http_brotli_header_filter``:
  the response-side tests of nginx's gzip filter (proxy/_gzip.py ``eligible``: 200 / 403 /
  404, no Content-Encoding, Content-Length unknown or at least brotli_min_length, a
  brotli_types type), then ``r->gzip_vary = 1``, then ``ngx_http_brotli_check_request``:
  :func:`accepts_br` only -- no HTTP version test (an HTTP/1.0 request is compressed, its
  answer delimited by closing), no gzip_disable / gzip_proxied. Compressing: ``Content-Encoding:
  br``, ``ngx_http_clear_content_length``, ``ngx_http_clear_accept_ranges``,
  ``ngx_http_weak_etag``, and ``r->gzip_tested = 1; r->gzip_ok = 0`` (the gzip filter after it
  sees the Content-Encoding and passes).
- ``ngx_http_brotli_body_filter``: one encoder per response; an input buffer with ``flush``
  set is BROTLI_OPERATION_FLUSH (ingress-nginx's ``proxy_buffering off`` flushes every
  upstream read), ``last_buf`` BROTLI_OPERATION_FINISH.
  ``ngx_http_brotli_filter_ensure_stream_initialized``: a known Content-Length shrinks the
  window (from BROTLI_MIN_WINDOW_BITS, 10, while the length is above it, up to lg_win).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._gzip import eligible, encoded_headers, length_of

if TYPE_CHECKING:
    from ._settings import ProxySettings

__all__ = ["BROKEN", "MISSING", "BrotliEncoder", "accepts_br", "available", "brotli_module",
           "start_brotli", "unavailable"]

#: The warning's text when ``enable-brotli`` is on and the package is not importable.
MISSING = ("the Brotli package (google/brotli's Python binding) is not installed: no response "
           "is brotli-compressed (pip install 'brotli>=1.1.0', or pip install '.[brotli]' from "
           "an ingresslib checkout); use-gzip works without it")

#: nginx.tmpl writes no brotli_window: ngx_http_brotli_merge_conf's default, 512k.
_LG_WIN = 19
#: BROTLI_MIN_WINDOW_BITS
_MIN_WIN = 10


#: The warning's text when a ``brotli`` module imports but is not google/brotli's binding
#: as this module calls it (``Compressor(quality=, lgwin=)`` with ``process`` / ``flush`` /
#: ``finish``): brotlipy, also imported as ``brotli``, has ``compress`` instead of
#: ``process``; a broken build fails on import or on its first stream.
BROKEN = ("the installed 'brotli' module ({}) is not google/brotli's Python binding as "
          "ingresslib needs it ({}): no response is brotli-compressed (pip install "
          "'brotli>=1.1.0'; brotlipy, which also installs a 'brotli' module, does not fit); "
          "use-gzip works without it")

#: Why :func:`brotli_module` is None (:data:`MISSING` or a :data:`BROKEN` text).
_why: list[str | None] = [None]


@functools.cache
def brotli_module() -> Any:
    """The ``brotli`` module, imported and tried once (a one-byte stream through the calls
    :class:`BrotliEncoder` makes); None when it is not importable or does not work as
    google/brotli's binding (:func:`unavailable` says why): then nothing is
    brotli-compressed, as if enable-brotli were off, rather than every eligible response
    failing."""
    import importlib

    _why[0] = None
    try:
        mod = importlib.import_module("brotli")
    except ImportError:
        _why[0] = MISSING
        return None
    except Exception as e:  # (a broken build: its extension fails to load)
        _why[0] = BROKEN.format("not importable", f"{type(e).__name__}: {e}")
        return None
    try:
        c = mod.Compressor(quality=0, lgwin=_MIN_WIN)
        out = bytes(c.process(b"br")) + bytes(c.flush()) + bytes(c.finish())
        if not out:
            raise ValueError("an empty stream")
    except Exception as e:
        where = getattr(mod, "__file__", None) or "?"
        _why[0] = BROKEN.format(where, f"{type(e).__name__}: {e}")
        return None
    return mod


def available() -> bool:
    """Whether brotli compression can run (the ``brotli`` module imports and works)."""
    return brotli_module() is not None


def unavailable() -> str | None:
    """None when brotli compression can run, else the warning's text (:data:`MISSING`,
    :data:`BROKEN`): the ConfigMap's enable-brotli warning (_config.py), once per load."""
    return None if brotli_module() is not None else _why[0]


def _at(ae: bytes, i: int) -> int:
    # nginx's header values end with a NUL its loops stop at.
    return ae[i] if i < len(ae) else 0


def _check_accept_encoding(ae: bytes) -> bool:
    """ngx_brotli's ``check_accept_encoding`` for one Accept-Encoding value: a "br" token
    (case-insensitive) after the start, "," or " " and before the end, ",", " " or ";"; then
    only ``;q=0``, ``;q=0.``, ``q=0.0``... (up to three zero decimals) or a ``q=0`` followed by
    anything but "." refuses -- any other parameter, a ``Q``, ``q=1`` or ``q=0.5`` accepts;
    a refused "br" is final (a later one is not looked for)."""
    if len(ae) < 2:
        return False
    low = ae.lower()
    pos = 0
    while True:
        p = low.find(b"br", pos)
        if p < 0:
            return False
        before = ae[p - 1] if p else 32
        pos = p + 2
        after = _at(ae, pos)
        if before in b", " and (after in b",; " or after == 0):
            break
    i = pos
    for want in b";q=":  # (each after optional spaces; a mismatch accepts)
        while _at(ae, i) == 32:
            i += 1
        if _at(ae, i) != want:
            return True
        i += 1
    while _at(ae, i) == 32:
        i += 1
    if _at(ae, i) != 48:  # "0"
        return True
    if _at(ae, i + 1) != 46:  # "."
        return False
    for j in range(i + 2, i + 5):
        d = _at(ae, j)
        if not 48 <= d <= 57:
            return False
        if d > 48:
            return True
    return False


def accepts_br(request_headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """``ngx_http_brotli_check_request``: the request's (first) Accept-Encoding takes br."""
    for name, value in request_headers:
        if name.lower() == b"accept-encoding":
            return _check_accept_encoding(bytes(value))
    return False


class BrotliEncoder:
    """One response's brotli stream: :meth:`feed` compresses and flushes
    (BROTLI_OPERATION_FLUSH: what was fed so far decodes at once), :meth:`finish` ends the
    stream. The encoder's state (about 0.5 MiB at first, growing with the bytes fed up to the
    512k window: about 1.7 MiB at brotli-level 4 and 6.7 MiB at 11 once 1 MiB was fed) is
    freed by :meth:`finish` or when the encoder is dropped."""

    __slots__ = ("_c",)

    def __init__(self, level: int, length: int | None = None) -> None:
        wbits = _LG_WIN
        if length is not None and length > 0:
            wbits = _MIN_WIN
            while wbits < _LG_WIN and length > (1 << wbits):
                wbits += 1
        self._c: Any = brotli_module().Compressor(quality=level, lgwin=wbits)

    def feed(self, data: bytes) -> bytes:
        c = self._c
        if c is None:
            return b""
        return bytes(c.process(data)) + bytes(c.flush())

    def finish(self) -> bytes:
        c = self._c
        if c is None:
            return b""
        self._c = None
        return bytes(c.finish())


def start_brotli(request_headers: Iterable[tuple[bytes, bytes]], status: int, head: bool,
                 headers: list[tuple[bytes, bytes, bytes]], pairs: list[tuple[bytes, bytes]],
                 settings: ProxySettings
                 ) -> bool | tuple[list[tuple[bytes, bytes, bytes]], BrotliEncoder | None]:
    """The brotli header filter on a response head: False (not eligible, or no brotli
    module: as if off), True (eligible, the client takes no br: ``Vary`` only, the gzip
    filter decides next), or the headers with ``Content-Encoding: br`` and the body's encoder
    (None for HEAD: its GET's headers, no body)."""
    if not eligible(status, pairs, settings.brotli_min_length, settings.brotli_types):
        return False
    if brotli_module() is None:
        return False
    if not accepts_br(request_headers):
        return True
    return encoded_headers(headers, b"br"), (
        None if head else BrotliEncoder(settings.brotli_level, length_of(headers)))
