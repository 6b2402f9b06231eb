"""What a ``ClientConnection`` keeps per request (``_Request``) and per upstream try
(``_Upstream``), and ``_raw_request_line``, the record's request line for a head it could not
parse. No socket, asyncio, ssl or logging handler here."""

from __future__ import annotations

from typing import Any

import h11

from ._actions import UpstreamTry
from ._annotations import RouteOptions
from ._h11_reader import _H11Reader
from ._response_head import _FRAME_LENGTH

__all__ = ["_Request", "_Upstream", "_raw_request_line"]


def _raw_request_line(head: bytes | None) -> str | None:
    """nginx's $request for a request line it could not parse (ngx_http_variable_request_line:
    "p = r->request_start; ... for (s = p; s < r->header_in->last; s++) { if (*s == CR || *s ==
    LF) { break; } }"): the bytes received up to the first CR or LF; None when there are none
    (logged ``-``). The access log escapes them."""
    if not head:
        return None
    end = len(head)
    for stop in (b"\r", b"\n"):
        i = head.find(stop, 0, end)
        if i >= 0:
            end = i
    return head[:end].decode("latin-1") or None


class _Upstream:
    __slots__ = ("conn_id", "endpoint", "h11", "connected", "reused", "sent", "received",
                 "started", "upgrade", "request_done", "head_bytes", "fed", "read_by",
                 "connect_time", "bytes_sent", "tunnel_in")

    def __init__(self, conn_id: int, endpoint: tuple[str, int], upgrade: bool) -> None:
        self.conn_id = conn_id
        self.endpoint = endpoint
        self.h11: _H11Reader | None = None
        self.connected = False
        self.reused = False
        #: Any byte of the request written to this connection.
        self.sent = False
        #: Any byte received from it.
        self.received = False
        self.started = 0.0
        self.upgrade = upgrade
        #: The whole request (head, body, end of body) was written to this connection.
        self.request_done = False
        #: While the client still sends the request body: when this try's proxy_read_timeout
        #: runs out, counted from its last read (None until its response head is in: until
        #: then only the client's client_body_timeout runs).
        self.read_by: float | None = None
        #: Bytes of response heads received on this try: 1xx heads and the final one.
        self.head_bytes = 0
        #: Bytes received on this try (all ``upstream_data``): less ``head_bytes``, what
        #: nginx's ``$upstream_response_length`` counts.
        self.fed = 0
        #: Bytes read from it through a WebSocket tunnel (``fed`` + this: nginx's
        #: ``$upstream_bytes_received``; not ``$upstream_response_length``).
        self.tunnel_in = 0
        #: Bytes written to it (``SendUpstream``, tunnel included): ``$upstream_bytes_sent``.
        self.bytes_sent = 0
        #: Seconds from ``started`` to its connect (None: not connected): nginx's
        #: ``$upstream_connect_time`` of this try.
        self.connect_time: float | None = None


class _Request:
    __slots__ = (
        "method", "method_s", "http_version", "host_raw", "host", "path", "query",
        "upstream_target", "decision", "opts", "headers", "unsent", "unsent_size", "replay",
        "replay_size",
        "body_len", "complete", "tried", "statuses", "start", "t_connect", "connect_time",
        "t_first", "request_id", "client_ip", "user_agent", "referer", "status", "bytes_in",
        "bytes_out", "response_started", "resp_up", "upgrade", "idempotent", "done",
        "answered", "continue_pending", "length", "keep_alive", "framing", "head_len", "up_head",
        "up_chunked", "original_uri", "t_attempt", "t_header", "t_attempt_end", "event",
        "authorization", "t_tries", "discard_until", "free_tries", "set_cookie", "raw_head",
        "phase", "times", "defer_limit", "host_from_target", "offloads", "try_up",
        "done_tries", "terminated", "rate_log",
    )

    def __init__(self, now: float) -> None:
        #: ``RequestRecord.phase``: "head" until the request is routed.
        self.phase = "head"
        #: ``RequestRecord.rate_limit_log``: what the rate limits decided (None: nothing).
        self.rate_log: tuple[str | None, str | None, str | None] | None = None
        self.method = b""
        self.method_s = ""
        self.http_version = "1.1"
        self.host_raw = ""
        #: ``host_raw`` is an absolute-form target's authority: the request had no Host.
        self.host_from_target = False
        self.host = ""
        self.path = ""
        self.query: str | None = None
        self.upstream_target = b""
        #: The origin-form target as the client sent it (nginx's ``$request_uri``).
        self.original_uri = ""
        self.decision: Any = None
        #: The session cookie to set (the decision's; a retry may replace it).
        self.set_cookie: str | None = None
        self.opts: RouteOptions | None = None
        #: The upstream request head, serialised once (retries send it again).
        self.up_head = b""
        #: The upstream request body is sent chunked (else as the client's Content-Length).
        self.up_chunked = False
        self.length: int | None = None
        #: Body bytes read from the client that no upstream connection took yet, and their size
        #: (changed only through ``hold`` / ``take_unsent`` / ``rewind``).
        self.unsent: list[bytes] = []
        self.unsent_size = 0
        self.replay: list[bytes] | None = []
        self.replay_size = 0
        self.body_len = 0
        self.complete = False
        #: Endpoints of every try, in order (nginx's $upstream_addr), the fresh connection
        #: after the keep-alive race included; ``free_tries`` of them do not count against
        #: proxy-next-upstream-tries (nginx: "if (u->peer.cached && ft_type ==
        #: NGX_HTTP_UPSTREAM_FT_ERROR) { u->peer.tries++; }").
        self.tried: list[tuple[str, int]] = []
        self.free_tries = 0
        self.statuses: list[int | None] = []
        #: The response time of each try before the current one (nginx sets a try's
        #: ``response_time`` when ngx_http_upstream_next abandons it). A tuple: no allocation
        #: for the common request with one try.
        self.times: tuple[float, ...] = ()
        #: The current try's connection (None: no try yet), and each try's before it
        #: (``_open`` adds them): ``RequestRecord.upstream_tries``. A tuple, as ``times``.
        self.try_up: _Upstream | None = None
        self.done_tries: tuple[UpstreamTry, ...] = ()
        self.start = now
        self.t_connect: float | None = None
        self.connect_time: float | None = None
        self.t_first: float | None = None
        #: The last upstream attempt (nginx's per-try ``u->start_time``): when its
        #: ``OpenUpstream`` went out, when its valid response head arrived, when it failed.
        #: Reset by every ``_open``, so a failed earlier try never leaks into the times.
        self.t_attempt: float | None = None
        self.t_header: float | None = None
        self.t_attempt_end: float | None = None
        #: When the first try started (nginx's ``u->peer.start_time``, set once per request
        #: before the first connect): the origin of ``proxy-next-upstream-timeout``.
        self.t_tries: float | None = None
        self.request_id: str | None = None
        self.client_ip: str | None = None
        self.user_agent: str | None = None
        self.referer: str | None = None
        #: The parsed request head and its first Authorization value, kept by reference for
        #: the record's ``request_line`` and ``remote_user`` (derived only if records are made).
        self.event: h11.Request | None = None
        self.authorization: bytes | None = None
        #: The head's bytes as received (a reference, no copy), or the start of a head refused
        #: before it was parsed: a record without ``event`` logs its first line, as nginx's
        #: $request does for a request line it could not parse.
        self.raw_head: bytes | None = None
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.response_started = False
        #: The try whose response head was accepted (None: none, or a later try started):
        #: its ``fed - head_bytes`` is $upstream_response_length.
        self.resp_up: _Upstream | None = None
        self.upgrade = False
        self.idempotent = True
        #: The record was emitted.
        self.done = False
        #: A local answer was sent; the rest of the request body is read and discarded.
        self.answered = False
        #: While discarding after a local answer: the time the discarding stops (nginx's
        #: ``lingering_time`` from the answer).
        self.discard_until: float | None = None
        self.continue_pending = False
        #: A request no rule routes, whose chunked body is read before the default backend's
        #: 404 is answered: the server's body limit (``proxy-body-size``), past which it is a
        #: 413 instead (``ClientConnection._defer_unrouted``); 0: not such a request.
        self.defer_limit = 0
        #: ``Offload`` actions this request waited for (``ClientConnection._offloaded``).
        self.offloads = 0
        #: Ended by the client (closed, timed out: 408) or an abort, not by its response:
        #: nginx's ngx_http_terminate_request / ngx_http_close_request, which never set
        #: ``r->request_complete`` (``RequestRecord.request_complete``).
        self.terminated = False
        #: The client allows keep-alive (HTTP/1.1 without "Connection: close"), as h11 decides.
        self.keep_alive = True
        #: Downstream body framing of the response being written (``_FRAME_*``).
        self.framing = _FRAME_LENGTH
        #: Bytes of the response head(s) sent to the client (for ``body_bytes_out``).
        self.head_len = 0

    def hold(self, data: bytes) -> None:
        """Body bytes no upstream can take yet: held, and counted (``reading_wanted``)."""
        self.unsent.append(data)
        self.unsent_size += len(data)

    def take_unsent(self) -> list[bytes]:
        """The held body bytes, handed to an upstream or dropped: none are held after."""
        held, self.unsent, self.unsent_size = self.unsent, [], 0
        return held

    def rewind(self) -> None:
        """A new attempt sends the body from its start again: what was kept for replay."""
        if self.replay is not None:
            self.unsent = list(self.replay)
            self.unsent_size = self.replay_size
