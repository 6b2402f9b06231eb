"""``proxy-request-buffering: "on"``: the request body read whole before the upstream is opened.

ingress-nginx writes ``proxy_request_buffering`` per location from the annotation (default: the
ConfigMap key, itself "on"; annotations/proxy/main.go ``ValidateOptions([]string{"on", "off"},
true, true)``: trimmed, case-sensitive, an invalid value takes the ConfigMap's). With it on,
nginx reads the whole body (ngx_http_read_client_request_body) before
ngx_http_upstream_init connects, and ngx_http_proxy_create_request sends it with a
``Content-Length`` (chunked only with ``r->request_body_no_buffering``), without the client's
trailers. ingresslib streams bodies by default (``ProxySettings.proxy_request_buffering``
``"off"``); "on" is opt-in:

* the body is held (``_Request.unsent``, one copy shared with the replay list ``Buffered``)
  while ``client-body-timeout`` runs between two reads; past ``proxy-body-size``: 413 and no
  upstream was ever opened;
* once it is in, the upstream is opened and sent the request with ``Content-Length`` (a
  chunked body re-framed, its trailers dropped); ``proxy-read-timeout`` runs from that send;
* retries (``proxy-next-upstream``) replay the whole body, whatever its size up to the cap;
  it is let go once the response began (no retry after that);
* the cap (``ProxySettings.request_buffering_limit``, 64 MiB): nginx spills a body past
  ``client-body-buffer-size`` to a temporary file; ingresslib keeps it in memory, so a chunked
  body past the cap is answered 413 (it cannot be sent with a length without being held), and
  a ``Content-Length`` body larger than the cap is streamed as with "off" (its framing is the
  same either way).

Sans-IO: the proxy core (``proxy/_connection.py``) calls ``begin`` from its access phase when
the location says "on", and ``frame`` once the body is complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._location_extras import one_of

if TYPE_CHECKING:
    from ._request import _Request

__all__ = ["REQUEST_BUFFERING", "DEFAULT_LIMIT", "Buffered", "parse_request_buffering",
           "begin", "frame"]

#: The annotation (and ConfigMap key) name.
REQUEST_BUFFERING = "proxy-request-buffering"
#: ``ProxySettings.request_buffering_limit``'s default: the most body bytes held per request.
DEFAULT_LIMIT = 64 * 1024 * 1024


class Buffered(list[bytes]):
    """The replay list of a request whose body is read whole first: its type marks the
    request (``_Request`` has fixed slots), so that nothing outlives the request."""

    __slots__ = ()


def parse_request_buffering(value: str) -> str:
    """``"on"`` or ``"off"`` (trimmed, case-sensitive, as ingress-nginx's ValidateOptions)."""
    return one_of(value, ("on", "off"), "proxy-request-buffering")


def frame(req: _Request) -> None:
    """The body is whole: a chunked request goes upstream with its ``Content-Length``."""
    if req.up_chunked:
        req.up_chunked = False
        req.up_head = req.up_head.replace(
            b"\r\ntransfer-encoding: chunked\r\n",
            b"\r\ncontent-length: %d\r\n" % req.body_len, 1)


def begin(req: _Request, limit: int) -> bool:
    """At the end of the access phase of a location with buffering on: True when the upstream
    is to wait for the end of the body (the core then holds it); False to open it now (no
    body, an upgrade, a ``Content-Length`` past ``limit``, or a body already whole, framed
    here)."""
    if req.upgrade:
        return False
    if req.complete:
        # Read whole already (held while the auth subrequest or an offloaded check ran).
        frame(req)
        return False
    length = req.length
    if not req.up_chunked and (not length or length > limit):
        return False
    if req.replay is None:
        # More than the replay bound arrived while the access phase waited (an auth
        # subrequest, a driver not pausing on ``reading_wanted``): no upstream had a byte, so
        # every one is still held (``_Request.hold``): buffered from those. Streaming it
        # instead sent a chunked body, to a proxy-http-version "1.0" upstream too.
        req.replay = Buffered(req.unsent)
        req.replay_size = req.unsent_size
        return True
    req.replay = Buffered(req.replay)
    return True
