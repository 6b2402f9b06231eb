"""``proxy-request-buffering: "on"``: the request body read whole before the upstream is opened.

ingress-nginx writes ``proxy_request_buffering`` per location from the annotation (default: the
ConfigMap key, itself "on"; annotations/proxy/main.go ``ValidateOptions([]string{"on", "off"},
true, true)``: trimmed, case-sensitive, an invalid value takes the ConfigMap's). With it on,
nginx reads the whole body (ngx_http_read_client_request_body) before
ngx_http_upstream_init connects, and ngx_http_proxy_create_request sends it with a
``Content-Length`` (chunked only with ``r->request_body_no_buffering``), without the client's
trailers. ingresslib streams bodies by default (``ProxySettings.proxy_request_buffering``
``"off"``); "on" is opt-in. Three values in all (``RouteOptions``): unset, ingresslib's default,
streams and keeps a body up to 1 MiB that a retry sends again (as nginx's "on" could); an
explicit "off" (the annotation, or the ConfigMap key: ``ProxySettings.replay_streamed_body``
False; ``RouteOptions.request_buffering_off``) is nginx's, no retry once a body still arriving
began to go upstream (``unbuffered``, ``resendable``), except in a location mirroring the body
(nginx's mirror handler reads it whole before the proxy runs: replayed as unset); "on":

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
  not fit streams from there on (the upstream opened then, the bytes held sent first and
  reserved until they are: ``HeldBody``): the upstream sees the same request either way. A
  body read whole while the access phase waited (an auth subrequest) is held to the same cap
  and budget as one read after it. A chunked body that grows past what is left is
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
* the endpoint is chosen when the body is in (``pick``), as nginx picks the peer in
  ingress-nginx's balancer phase (``balancer.balance()``, at the connect), while the rule and
  the canary's side are decided on the head (``balancer.rewrite()``, the rewrite phase): the
  router's ``route`` still matches and picks on the head, and its ``repick`` (``Router``'s:
  ``_router.py``) picks again from that side's current endpoints, so an endpoint removed
  while a client uploads does not get the request, EWMA reads its scores of now, and a
  session cookie names the endpoint used. The head's pick stands when nothing changed and
  the balancer would not pick otherwise (round-robin: the head's pick took the request's
  turn; consistent hashing; a session's cookie). A router without ``repick`` keeps the
  head's. A ``Content-Length`` body that switches to streaming picks at that switch (its
  connect). A request refused before its connect (413, 408, a bad chunk, the client gone)
  gives the round-robin turn (and the canary split's choice) its head took back
  (``give_back``, called by the core for every request that ends without a try, buffered
  or not): nginx's rotation never saw it.

Sans-IO: the proxy core (``proxy/_connection.py``) calls ``start`` from its access phase when
the location says "on", ``held`` for each body read while the upstream waits for the body,
``whole`` once the body is complete, and ``release`` where the held body is let go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._location_extras import one_of

if TYPE_CHECKING:
    from ._annotations import RouteOptions
    from ._connection import ClientConnection
    from ._request import _Request

__all__ = ["REQUEST_BUFFERING", "DEFAULT_LIMIT", "DEFAULT_BUDGET", "UNARMED_BODY_TIMEOUT",
           "JOIN_BELOW", "Buffered", "BufferBudget", "budget_of", "parse_request_buffering",
           "given_mode", "Unbuffered", "no_buffering", "unbuffered", "resendable", "start",
           "held", "release", "frame", "whole", "pick", "give_back", "HeldBody"]

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


class HeldBody(Buffered):
    """``_Request.unsent`` of a ``Content-Length`` body that switched to streaming (``held``)
    while its upstream connects: the bytes held so far stay reserved in ``budget`` (``kept``)
    for as long as this list holds them, given back when it is dropped (sent upstream by the
    core's ``_send_request``, or dropped by a local answer) or by ``release`` at the
    connection's close (a driver may keep a closed connection's core). Given
    back at the switch, they were held uncounted until the connect: another upload could
    reserve them again, the memory held past the budget by up to a cap per switch. A
    ``Buffered`` for its reservation and its ``__del__``; told apart by ``type(...) is``."""

    __slots__ = ()


def parse_request_buffering(value: str) -> str:
    """``"on"`` or ``"off"`` (trimmed, case-sensitive, as ingress-nginx's ValidateOptions)."""
    return one_of(value, ("on", "off"), "proxy-request-buffering")


def given_mode(value: str | None) -> str | None:
    """The annotation's ``"on"`` or ``"off"``; None when unset or invalid (the ConfigMap's
    value applies then: ``parse_route_options`` warns)."""
    if value is None:
        return None
    try:
        return parse_request_buffering(value)
    except ValueError:
        return None


class Unbuffered(list[bytes]):
    """The replay list of a body sent upstream while still arriving under an explicit
    ``proxy-request-buffering: "off"`` (``unbuffered``): nginx's
    ``r->request_body_no_buffering``. Kept for what needs the body again besides a retry
    (``custom-http-errors``' error page), never for a retry (``resendable``)."""

    __slots__ = ()


def no_buffering(opts: RouteOptions) -> bool:
    """Whether a location's body is sent unbuffered as nginx's ``proxy_request_buffering off``
    (``r->request_body_no_buffering``): "off" given (``opts.request_buffering_off``), and no
    mirror of the body. ngx_http_mirror_handler (the precontent phase, before the proxy's
    content handler) reads the whole body first with ``mirror_request_body on``
    ("ngx_http_read_client_request_body(r, ngx_http_mirror_body_handler)"), so the proxy's
    ngx_http_read_client_request_body finds "r->request_body" and clears
    ``request_body_no_buffering``: retried as with "on". Read from the request's options, not
    at parse time: a host's default backend takes the server's mirror (``_actions``'
    ``_with_server_location``) and its own Ingress's buffering."""
    mirror = opts.mirror
    return opts.request_buffering_off and (mirror is None or not mirror.request_body)


def unbuffered(req: _Request) -> None:
    """``req`` is first written upstream (``_send_request``; nginx's ``u->request_sent``)
    while its body still arrives, under an explicit "off" (``RouteOptions.request_buffering_off``,
    tested by the core: a streamed request calls nothing here): no retry from now on
    (``resendable``), whatever the method or the condition.

    nginx decides it in ngx_http_read_client_request_body, called by its proxy handler:
    ``r->request_body_no_buffering`` (set for "off") is cleared without a body
    ("content_length_n < 0 && !chunked"), for one pre-read whole, an empty one included
    ("rb->rest == 0 && rb->last_saved"), and for one read whole at once ("done: ... if (rc ==
    NGX_OK) { r->request_body_no_buffering = 0; }"): those are buffered and sent again as with
    "on". ngx_http_upstream_next and ngx_http_upstream_test_next then refuse the next server
    when "u->request_sent && r->request_body_no_buffering" (the documentation's "the request
    cannot be passed to the next server if nginx already started sending the request body").
    Here the body's state is read when the request is first written (the connect: what the
    client sent meanwhile is in), as nginx reads what is there before it connects; a try whose
    connect failed wrote nothing, so the next one decides. Nothing for a location mirroring
    the body (``no_buffering``)."""
    opts = req.opts
    if type(req.replay) is list and opts is not None and no_buffering(opts):
        # (not over 1 MiB already, nor marked by an earlier try)
        req.replay = Unbuffered(req.replay)


def resendable(req: _Request) -> bool:
    """Whether the body of ``req`` (sent upstream already) may be sent again by a retry: kept
    (up to 1 MiB streamed, the whole of one held: ``Buffered``), and not ``Unbuffered``."""
    replay = req.replay
    return replay is not None and type(replay) is not Unbuffered


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
    for a request holding none, does nothing). A ``HeldBody`` (a body switched to streaming,
    its upstream connecting) too: a closed connection's core may outlive its close."""
    replay = req.replay
    if type(replay) is Buffered:
        req.replay = None
        budget = replay.budget
        if budget is not None:
            budget.held -= replay.kept
        replay.kept = 0
        replay.budget = None
    unsent = req.unsent
    if type(unsent) is HeldBody:
        req.take_unsent()  # (no upstream takes them now)
        budget = unsent.budget
        if budget is not None:
            budget.held -= unsent.kept
        unsent.kept = 0
        unsent.budget = None


def _ask_router(hook: Any, decision: Any, req: _Request) -> Any:
    """The router's ``hook`` (``repick``, ``give_back``) asked about ``decision``, with the
    request as ``route`` was given it on the head."""
    event = req.event
    return hook(decision, req.method_s, req.host_raw, req.path,
                event.headers if event is not None else (), req.client_ip, query=req.query)


def give_back(conn: ClientConnection, req: _Request) -> None:
    """``req`` ends without ever having opened an upstream (no try): the turns its head's
    pick took go back to the router (``Router.give_back``), as nginx picks the peer only at
    the connect (ingress-nginx ``balancer.balance()``) and a request answered before never
    took a round-robin turn; nothing with a router without ``give_back``. A failure is
    logged, as the core's other hooks."""
    hook = getattr(conn.proxy.router, "give_back", None)
    if hook is not None:
        try:
            _ask_router(hook, req.decision, req)
        except Exception:
            conn.proxy._hook_failed("router.give_back")


def pick(conn: ClientConnection, req: _Request) -> tuple[str, int] | None:
    """The endpoint for the connect of a request whose body was read first, chosen now: the
    router's ``repick`` (``Router``'s) from the side of the rule the head chose, its decision
    and session cookie the request's from here on; the head's without one (or when it
    raises: logged, as the core's other hooks). None: that side has no endpoint left."""
    decision = req.decision
    assert decision is not None
    proxy = conn.proxy
    repick = getattr(proxy.router, "repick", None)
    if repick is not None:
        try:
            new = _ask_router(repick, decision, req)
            if new is not decision and new is not None:
                _check_repick(decision, new)
        except Exception:
            proxy._hook_failed("router.repick")
            new = decision
        if new is not decision and new is not None:
            # The cookie follows the endpoint (sticky.lua sets it in balance(), the pick).
            req.decision = new
            req.set_cookie = getattr(new, "set_cookie", None)
            decision = new
    endpoint: tuple[str, int] | None = decision.endpoint
    return endpoint


def _check_repick(decision: Any, new: Any) -> None:
    """Raises unless ``new`` is a decision of the rule ``decision`` is of (its ``match``,
    the same or an equal one) with an endpoint or none: a router's ``repick`` answering
    another rule's decision would have the body sent to a backend the request was not routed
    to (nor its access phase run for), and one answering something else raised in the core."""
    match = getattr(new, "match", None)
    if match is not decision.match and not (match is not None and match == decision.match):
        raise TypeError(f"router.repick answered {new!r}, not a decision of the request's "
                        f"rule {decision.match!r}: the head's decision is used")
    endpoint = new.endpoint
    if endpoint is not None and not (type(endpoint) is tuple and len(endpoint) == 2):
        raise TypeError(f"router.repick answered the endpoint {endpoint!r}: the head's "
                        "decision is used")


def whole(conn: ClientConnection, req: _Request, now: float) -> None:
    """The body is in: the upstream is chosen (``pick``) and opened, to be sent the request
    with its ``Content-Length``; no endpoint left on the rule's side: 503."""
    frame(req)
    conn._set_timer(None, None)
    endpoint = pick(conn, req)
    if endpoint is None:
        conn._local_response(req, 503, now)
        return
    conn._open(req, endpoint, now)


def start(conn: ClientConnection, req: _Request, now: float) -> bool:
    """At the end of the access phase of a location with buffering on: True when the core is
    not to open the upstream now (the body is to be read first, or it was read already and
    the upstream is opened here; or, a chunked body whose bytes already held are past the cap
    or do not fit the budget, answered 413/503); False to open it now (no body, an upgrade, a
    ``Content-Length`` past the cap or what is left of the budget: streamed as with "off").
    What is reserved: the body bytes held so far (``held`` reserves the rest as it comes). A
    body read whole while the access phase waited (an auth subrequest, an offloaded check)
    is held to the same cap and budget as one read after it."""
    if req.upgrade:
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
    if req.complete:
        # Read whole already (held while the auth subrequest or an offloaded check ran):
        # reserved as above, now its upstream.
        whole(conn, req, now)
        return True
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
            # here on rather than refused (the bytes held go first, ``upstream_connected``),
            # still reserved until then (``HeldBody``); the endpoint chosen now, at the connect.
            req.replay = None
            req.unsent = HeldBody(req.unsent, budget, replay.kept)
            replay.budget = None
            replay.kept = 0
            endpoint = pick(conn, req)
            if endpoint is None:
                conn._local_response(req, 503, now)
                return
            conn._open(req, endpoint, now)
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
