"""What the core asks its driver to do, and the record it emits per request.

Actions are frozen, slotted dataclasses; the driver performs them in order. They carry data
only, never behaviour, so a driver can be asyncio, selectors or a test harness.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "TimerKind",
    "Action",
    "OpenUpstream",
    "SendUpstream",
    "CloseUpstream",
    "SendDownstream",
    "CloseDownstream",
    "SetTimer",
    "RequestDone",
    "TunnelEstablished",
    "RequestRecord",
]


class TimerKind(enum.Enum):
    #: Absolute deadline for a whole request head (nginx ``client_header_timeout``).
    HEAD = "head"
    #: Idle keep-alive time between two requests (ingress-nginx ``keep-alive``).
    IDLE = "idle"
    #: Time between two reads from the upstream (``proxy-read-timeout``).
    UPSTREAM_READ = "upstream_read"
    #: Time between two reads of the request body from the client (``client-body-timeout``):
    #: armed while the body is still coming, instead of ``UPSTREAM_READ``.
    BODY = "body"


@dataclass(frozen=True, slots=True)
class OpenUpstream:
    """Connect to ``endpoint`` (or take an idle pooled connection to it), then call
    ``upstream_connected(conn_id, now, reused=...)`` or ``upstream_failed(conn_id, now, ...)``."""

    conn_id: int
    endpoint: tuple[str, int]
    tls: bool
    connect_timeout: float
    send_timeout: float
    #: False: open a new connection, do not take one from the idle pool (a retry after a
    #: pooled connection turned out to be closed by the upstream).
    pooled: bool = True


@dataclass(frozen=True, slots=True)
class SendUpstream:
    conn_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseUpstream:
    """``reuse=True``: both sides finished cleanly, return the connection to the endpoint's
    idle pool; ``reuse=False``: close it."""

    conn_id: int
    reuse: bool


@dataclass(frozen=True, slots=True)
class SendDownstream:
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseDownstream:
    """Close the client connection once everything sent before has been written.

    ``linger=True``: the client may still be sending request bytes the core will not read (a
    body cut short by a 413, 408 or 504). Closing a socket with unread input makes the kernel
    send a reset, which can destroy the response before the client reads it; so first end our
    side only (FIN after the response) and read and drop the client's bytes for a while, as
    nginx's ``lingering_close`` does.
    """

    linger: bool = False


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Arm the connection's single timer (replacing any armed one); ``seconds=None`` cancels."""

    kind: TimerKind
    seconds: float | None


@dataclass(frozen=True, slots=True)
class TunnelEstablished:
    """The upstream answered 101: from now on bytes are relayed both ways untouched."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished (or failed) request: what access logs and metrics consume."""

    method: str
    #: Host as received, lower-case, port stripped.
    host: str
    #: The canonical path that was routed (and forwarded, before any rewrite-target), no query.
    path: str
    query: str | None
    #: The matched rule's path as written (metrics label ``path``), None for a default backend.
    rule_path: str | None
    ingress: str | None
    service: str | None
    namespace: str | None
    canary: bool
    #: Status sent to the client; 499 when the client went away before a response (nginx's
    #: "client closed request", never sent); 0 when none was sent (``abort``).
    status: int
    #: Request bytes read from the client (head and body).
    bytes_in: int
    #: Response bytes sent to the client (head and body).
    bytes_out: int
    #: Endpoints tried, in order.
    upstreams: tuple[tuple[str, int], ...]
    upstream_status: int | None
    upstream_statuses: tuple[int | None, ...]
    start: float
    upstream_connect: float | None
    upstream_first_byte: float | None
    end: float
    request_id: str | None
    client_ip: str | None
    http_version: str
    user_agent: str | None
    referer: str | None
    upstream_response_length: int
    #: The served backend's port as written in the Ingress (number or port name).
    service_port: int | str | None = None
    #: When the canary served: the main rule's backend (else None).
    primary_service: str | None = None
    primary_port: int | str | None = None
    #: The Basic-authentication user name the client sent (nginx ``$remote_user``), else None.
    remote_user: str | None = None
    #: The request line as received, latin-1 (nginx ``$request``: "full original request
    #: line"), before any canonicalisation; None when no request line was parsed.
    request_line: str | None = None
    #: Response body bytes sent to the client (``bytes_out`` minus the head; nginx
    #: ``$body_bytes_sent``). The core always sets it; None means "not provided".
    body_bytes_out: int | None = None
    #: Seconds spent establishing the last upstream connection made (the last try's, or the
    #: latest try that connected): from its ``OpenUpstream`` to ``upstream_connected``; 0.0 for
    #: a pooled connection (nginx's ``$upstream_connect_time``, which lists one per try; like
    #: the header and response times, the record keeps the last). The core always sets it when
    #: a connection was made; None means "none made", or "not provided".
    upstream_connect_time: float | None = None
    #: Seconds from the start of the last upstream attempt (its ``OpenUpstream``; a pooled
    #: connection's connect costs ~0) to the arrival of that attempt's response head (the
    #: read that completed a valid head, a 101 included), as nginx's ``$upstream_header_time``
    #: counts from the attempt's connect to the parsed header. None when the last attempt got
    #: no usable head (it failed, or its head was invalid), when no upstream was tried, or
    #: "not provided" (then ``upstream_response_time`` is None as well).
    upstream_header_time: float | None = None
    #: Seconds from the start of the last upstream attempt (its ``OpenUpstream``) to its end
    #: (nginx's ``$upstream_response_time``): the last response byte; where a response was cut
    #: short, the cut; for a WebSocket tunnel, the tunnel's close (nginx finalizes an upgraded
    #: request when the tunnel closes); for an attempt that got no response, the moment it
    #: failed (or the request ended: a client gone before the answer), as nginx also keeps a
    #: time for a failed try. The core always sets it when an upstream was tried; None means
    #: "no upstream tried" (a local answer), or "not provided".
    upstream_response_time: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def upstream_latency(self) -> float | None:
        if self.upstream_first_byte is None:
            return None
        return self.upstream_first_byte - self.start


@dataclass(frozen=True, slots=True)
class RequestDone:
    record: RequestRecord


Action = (OpenUpstream | SendUpstream | CloseUpstream | SendDownstream | CloseDownstream
          | SetTimer | RequestDone | TunnelEstablished)
