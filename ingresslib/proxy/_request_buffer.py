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
  same either way);
* the budget (``ProxySettings.request_buffering_budget``, 256 MiB): the body bytes every
  connection of one ``Proxy`` holds together (``BufferBudget``, ``budget_of``). Every body
  reserves its bytes as they come (a length declared and not sent holds nothing: four heads
  promising the cap would otherwise hold the whole budget at the price of a byte per
  ``client-body-timeout``). A ``Content-Length`` body whose length does not fit what is left
  when buffering begins streams from the start as with "off", and one whose next read does
  not fit streams from there on (the upstream opened then, the bytes held sent first): the
  upstream sees the same request either way. A chunked body that grows past what is left is
  answered 503 and the connection closed (no upstream was opened). 503 rather than 413: the
  body is not too large (413 is kept for a body past the smaller of the cap and the whole
  budget, which can never be held), the server is busy with other uploads, as
  limit-connections' 503; nor streamed: with "on" the upstream always gets a
  ``Content-Length``, the reason one turns it on. A reservation is given back exactly once
  (``release``): when the response begins, on any local answer (413, 408, 502/504 after the
  tries, 503), or when the connection closes (the client gone, ``abort``); and by a request
  dropped without any of these (a driver discarding a core after an exception:
  ``Buffered.__del__``). The limit is the Proxy's latest settings' (not the connection's,
  opened with older ones), for the bodies being read too. Small reads are joined while held
  (``JOIN_BELOW``), so that the memory held stays near the bytes counted;
* ``client_body_timeout`` 0 (``ProxySettings`` only: the ConfigMap refuses "0") reads as "no
  deadline" elsewhere; while a body is held it is ``UNARMED_BODY_TIMEOUT`` (60 s, nginx's
  default), so a stalled client cannot keep its share of the budget for good (nginx's
  ``ngx_http_do_read_client_request_body`` arms ``ngx_add_timer(c->read,
  clcf->client_body_timeout)`` whatever its value: with 0 every wait times out at once);
* the endpoint is chosen with the route, on the head (nginx chooses it after the body, in
  ingress-nginx's balancer phase): the router's ``route`` matches and picks in one call, and
  choosing again at the body's end would advance a round-robin rotation or a canary split a
  second time and could land on the other side of a canary whose options ran the access
  phase. A connect to an endpoint removed meanwhile fails and is retried
  (``proxy-next-upstream``); the balancer's response time counts from the connect.

Sans-IO: the proxy core (``proxy/_connection.py``) calls ``start`` from its access phase when
the location says "on", ``held`` for each body read while the upstream waits for the body,
``frame`` once the body is complete, and ``release`` where the held body is let go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._location_extras import one_of

if TYPE_CHECKING:
    from ._connection import ClientConnection
    from ._request import _Request

__all__ = ["REQUEST_BUFFERING", "DEFAULT_LIMIT", "DEFAULT_BUDGET", "UNARMED_BODY_TIMEOUT",
           "JOIN_BELOW", "Buffered", "BufferBudget", "budget_of", "parse_request_buffering",
           "start", "held", "release", "frame"]

#: The annotation (and ConfigMap key) name.
REQUEST_BUFFERING = "proxy-request-buffering"
#: ``ProxySettings.request_buffering_limit``'s default: the most body bytes held per request.
DEFAULT_LIMIT = 64 * 1024 * 1024
#: ``ProxySettings.request_buffering_budget``'s default: the most body bytes held by all the
#: requests of one ``Proxy`` together (four requests at the cap).
DEFAULT_BUDGET = 256 * 1024 * 1024
#: The wait between two reads of a held body when ``client_body_timeout`` is 0 ("no
#: deadline"): nginx's default ``client_body_timeout``.
UNARMED_BODY_TIMEOUT = 60.0
#: Two pieces of a held body smaller than this together are joined into one (``held``): a
#: piece costs ~50 bytes beyond its own (a bytes object, a slot in ``unsent`` and one in the
#: replay list), so a client sending one tiny chunk per read would otherwise hold ~75 times
#: the bytes the budget counts. A join copies at most this many bytes (O(1) per read).
JOIN_BELOW = 2048


class BufferBudget:
    """The body bytes the buffered requests of one ``Proxy`` have reserved (``held``), at most
    ``limit`` (``ProxySettings.request_buffering_budget``)."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.held = 0
        self.limit = limit


def budget_of(proxy: object, limit: int) -> BufferBudget:
    """The ``BufferBudget`` of ``proxy`` (one per Proxy: every connection of a server), its
    limit the settings' ``limit`` (the latest settings' when they changed)."""
    budget = getattr(proxy, "_request_buffer_budget", None)
    if not isinstance(budget, BufferBudget):
        budget = BufferBudget(limit)
        setattr(proxy, "_request_buffer_budget", budget)
    else:
        budget.limit = limit
    return budget


class Buffered(list[bytes]):
    """The replay list of a request whose body is read whole first: its type marks the
    request (``_Request`` has fixed slots), so that nothing outlives the request. ``kept``:
    the bytes it reserved in ``budget`` (the body's bytes as they came, a ``Content-Length``
    body's as a chunked one's: a declared length reserves nothing by itself); 0 once given
    back."""

    __slots__ = ("budget", "kept")

    def __init__(self, parts: list[bytes], budget: BufferBudget | None = None,
                 kept: int = 0) -> None:
        super().__init__(parts)
        self.budget = budget
        self.kept = kept

    def __del__(self) -> None:
        # A request dropped without ``release``: its connection's core discarded by the
        # driver after an exception (``ProxyServer``'s ``_crashed`` resets the connection
        # without telling the core), or by a sans-IO driver that never calls ``abort``. Its
        # reservation would otherwise be lost for good, the budget smaller for every later
        # upload until the process restarts. (Released ones hold none: nothing twice.)
        budget = self.budget
        if budget is not None:
            self.budget = None
            budget.held -= self.kept
            self.kept = 0


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


def release(req: _Request) -> None:
    """The held body of ``req`` is let go (its response began, it was answered here, or its
    connection closed): its reservation goes back to the budget, once (a second call, or one
    for a request holding none, does nothing)."""
    replay = req.replay
    if type(replay) is Buffered:
        req.replay = None
        budget = replay.budget
        if budget is not None:
            budget.held -= replay.kept
        replay.kept = 0
        replay.budget = None


def start(conn: ClientConnection, req: _Request, now: float) -> bool:
    """At the end of the access phase of a location with buffering on: True when the core is
    not to open the upstream now (the body is to be read first; or, a chunked body whose bytes
    already held do not fit the budget, answered 503); False to open it now (no body, an
    upgrade, a ``Content-Length`` past the cap or what is left of the budget, or a body
    already whole, framed here). What is reserved: the body bytes held so far (``held``
    reserves the rest as it comes)."""
    if req.upgrade:
        return False
    if req.complete:
        # Read whole already (held while the auth subrequest or an offloaded check ran).
        frame(req)
        return False
    length = req.length
    settings = conn.settings
    # The Proxy's settings, not the connection's: a connection keeps the settings it was
    # opened with, and one opened before a reload must not set the shared limit back.
    budget = budget_of(conn.proxy, conn.proxy.settings.request_buffering_budget)
    cap = min(settings.request_buffering_limit, budget.limit)
    if not req.up_chunked:
        if not length or length > cap or budget.held + length > budget.limit:
            return False  # streamed as with "off": same framing
        # Its bytes as they come, not its declared length: a head alone (a length promised,
        # nothing sent) would otherwise hold its share for as long as it trickles a byte per
        # client_body_timeout, four such heads the whole budget (every chunked upload 503).
        kept = req.unsent_size if req.replay is None else req.replay_size
    else:
        kept = req.unsent_size if req.replay is None else req.replay_size
        if kept > cap:
            conn._error_response(413, req, now)
            return True
        if budget.held + kept > budget.limit:
            conn._error_response(503, req, now)
            return True
    if req.replay is None:
        # More than the replay bound arrived while the access phase waited (an auth
        # subrequest, a driver not pausing on ``reading_wanted``): no upstream had a byte, so
        # every one is still held (``_Request.hold``): buffered from those. Streaming it
        # instead sent a chunked body, to a proxy-http-version "1.0" upstream too.
        req.replay = Buffered(req.unsent, budget, kept)
        req.replay_size = req.unsent_size
    else:
        req.replay = Buffered(req.replay, budget, kept)
    budget.held += kept
    conn._set_request_timer(req, now)  # (0: UNARMED_BODY_TIMEOUT, a body being held)
    return True


def held(conn: ClientConnection, req: _Request, replay: Buffered, now: float) -> None:
    """A body read held while the upstream waits for the whole body (``req.replay_size`` and
    ``req.unsent_size`` count it), reserved in the budget: a chunked body past the cap (or the
    whole budget), 413; past what is left of the budget, 503. A ``Content-Length`` body that
    does not fit what is left is streamed from here on as with "off" (the upstream opened now
    and sent the same request, the bytes held first). Else ``client_body_timeout`` until the
    next read."""
    size = req.unsent_size
    budget = replay.budget
    if budget is not None:
        # The latest settings' limit (a reload lowering it binds the bodies being read too).
        budget.limit = conn.proxy.settings.request_buffering_budget
    if size > conn.settings.request_buffering_limit:
        conn._error_response(413, req, now)
        return
    more = req.replay_size - replay.kept
    if more > 0 and budget is not None:  # (``start`` gives every Buffered its budget)
        if budget.held + more > budget.limit:
            if req.up_chunked:
                # Past the whole budget it can never be held: the cap's 413; else the server
                # is busy with other uploads: 503.
                conn._error_response(413 if size > budget.limit else 503, req, now)
                return
            # A Content-Length body: its framing is the same either way, so streamed from
            # here on rather than refused (the bytes held go first, ``upstream_connected``).
            release(req)
            conn._open(req, req.decision.endpoint, now)
            conn._set_request_timer(req, now)
            return
        budget.held += more
        replay.kept += more
    if len(replay) > 1:
        last = replay[-1]
        prev = replay[-2]
        if len(prev) + len(last) <= JOIN_BELOW:
            unsent = req.unsent  # (the same pieces: no upstream took any yet)
            if len(unsent) > 1 and unsent[-1] is last and unsent[-2] is prev:
                joined = (prev + last,)
                replay[-2:] = joined
                unsent[-2:] = joined
    conn._set_request_timer(req, now)  # (0: UNARMED_BODY_TIMEOUT, a body being held)
