"""ingress-nginx's ``limit-rate`` / ``limit-rate-after`` (response bandwidth per request), as
nginx's ``limit_rate`` / ``limit_rate_after`` enforce them. Pure: no clock is read here (the
driver's ``now`` is passed in), no I/O.

The reference:

- ingress-nginx internal/ingress/annotations/ratelimit/main.go ``Parse``: "lr, err :=
  parser.GetIntAnnotation(limitRateAnnotation, ...); if err != nil { lr =
  defBackend.LimitRate }" (and limit-rate-after alike): an unset or invalid value (Go's
  ``strconv.Atoi`` fails) takes the ConfigMap's ``limit-rate`` / ``limit-rate-after``
  (config.go ``defaults.Backend``, default 0); unlike limit-rps & co., an invalid one fails
  nothing else. Both are location options (``AnnotationScopeLocation``): a canary's are not
  read (the main rule's apply).
- template.go ``buildRateLimit``: "if loc.RateLimit.LimitRateAfter > 0 { limit_rate_after
  %vk; }" and "if loc.RateLimit.LimitRate > 0 { limit_rate %vk; }": kilobytes (nginx's ``k``
  is 1024), 0 or a negative value writes nothing (no limit). The template writes them
  whatever ``proxy-buffering`` says; ingress-nginx's annotations.md adds "This feature must be
  used with proxy-buffering enabled": nginx's unbuffered path turns it off
  (ngx_http_upstream_send_response: "if (!u->buffering) { ... r->limit_rate = 0;
  r->limit_rate_set = 1;"). ingresslib applies the rate to every proxied response, buffered
  (``proxy-buffering: "on"``, proxy/_response_buffer.py) or not, and a throttled response is
  not read ahead of its client: its upstream is read as the rate lets bytes out (past 64 KiB
  held, ``ClientConnection.upstream_reading_wanted``), whatever proxy-buffering says.
- nginx src/http/ngx_http_write_filter_module.c ``ngx_http_write_filter``, per request:
  "limit = (off_t) r->limit_rate * (ngx_time() - r->start_sec + 1) - (c->sent -
  r->limit_rate_after); if (limit <= 0) { c->write->delayed = 1; delay = (ngx_msec_t)
  (- limit * 1000 / r->limit_rate + 1); ngx_add_timer(c->write, delay); ... return
  NGX_AGAIN; }", then at most ``limit`` bytes are sent, then "delay = (ngx_msec_t) ((nsent -
  sent) * 1000 / r->limit_rate); if (delay > 0) { c->write->delayed = 1;
  ngx_add_timer(c->write, delay); }" (``sent``/``nsent`` counted past limit_rate_after
  only): whole seconds since the request began (``start_sec``: 1-second granularity), the
  response head counted in ``c->sent``, and nothing more is written while ``delayed``
  ("if (c->write->delayed) { ... return NGX_AGAIN; }"). That delay is no send timeout
  (ngx_http_upstream_process_downstream: "if (wev->delayed) { wev->timedout = 0; wev->delayed
  = 0; ...": the pipe writes on).

:class:`Throttle` is that arithmetic over one response's bytes; proxy/_connection.py holds
the bytes not yet allowed and arms ``TimerKind.RATE`` for the delay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from .._goparse import parse_int

__all__ = ["BANDWIDTH_ANNOTATIONS", "KB", "Throttle", "parse_bandwidth", "throttled_send"]

_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: The annotations read here (without the prefix); the ConfigMap keys have the same names.
BANDWIDTH_ANNOTATIONS = frozenset({"limit-rate", "limit-rate-after"})
#: nginx's ``k`` suffix (``ngx_parse_size``): ``limit_rate 1k`` is 1024 bytes per second.
KB = 1024


def parse_bandwidth(annotations: Mapping[str, str], prefix: str, rate_kb: int, after_kb: int,
                    warn: Callable[[str, str], None]) -> tuple[int, int]:
    """``(rate, after)`` in bytes (per second, and unthrottled first bytes) for an Ingress's
    ``annotations``; ``rate_kb`` / ``after_kb`` are the ConfigMap's (``ProxySettings.limit_rate``
    / ``limit_rate_after``, kilobytes), taken for an unset or invalid annotation as
    ratelimit/main.go does. ``warn(key, message)`` is told of an invalid value (not a whole
    number: the ConfigMap's value used) and of a negative one (no limit: ingress-nginx's
    template writes no directive for it). A rate of 0 means no limit."""
    values = []
    for name, default in (("limit-rate", rate_kb), ("limit-rate-after", after_kb)):
        raw = annotations.get(prefix + name)
        n = default
        if raw is not None:
            parsed = parse_int(raw)  # Go's strconv.Atoi (parser.GetIntAnnotation)
            if parsed is None:
                warn(prefix + name, f"invalid {name} {raw!r}: must be a whole number of "
                     f"kilobytes; using the default {default}")
            elif parsed < 0:
                warn(prefix + name, f"{name} {raw!r} is negative: no {name} applies (as in "
                     "ingress-nginx, whose template writes none)")
                n = 0
            else:
                n = parsed
        values.append(max(n, 0) * KB)
    return values[0], values[1]


class Throttle:
    """One response's bandwidth limit (nginx's write filter with ``limit_rate``): bytes are
    ``push``-ed as they come; ``release(now)`` gives those allowed now and the delay before
    the next release (None: none needed; more may be pushed and released at once).

    ``rate``: bytes per second (> 0); ``after``: bytes sent unthrottled first
    (``limit_rate_after``); ``start``: when the request began (``now`` of its first head
    byte), its whole second the origin of the allowance."""

    __slots__ = ("rate", "after", "start_sec", "sent", "held", "delayed")

    def __init__(self, rate: int, after: int, start: float) -> None:
        self.rate = rate
        self.after = after
        self.start_sec = int(start)
        #: Bytes released so far (nginx's ``c->sent`` for this request: head and body).
        self.sent = 0
        #: Bytes pushed and not released yet.
        self.held = bytearray()
        #: nginx's ``c->write->delayed``: nothing is released until the delay's timer fires
        #: (``timer_fired``).
        self.delayed = False

    def push(self, data: bytes) -> None:
        self.held += data

    def timer_fired(self) -> None:
        """The delay ran out: releases may go on."""
        self.delayed = False

    def release(self, now: float) -> tuple[bytes, float | None]:
        """``(data, delay)``: the bytes to send now (possibly none) and, when not None, the
        seconds to wait before the next ``release`` (``delayed`` is then True until
        ``timer_fired``). Nothing is released while ``delayed``."""
        held = self.held
        if self.delayed or not held:
            return b"", None
        rate = self.rate
        after = self.after
        sent = self.sent
        limit = rate * (int(now) - self.start_sec + 1) - (sent - after)
        if limit <= 0:
            self.delayed = True
            return b"", (-limit * 1000 // rate + 1) / 1000
        if limit >= len(held):
            data = bytes(held)
            held.clear()
        else:
            data = bytes(held[:limit])
            del held[:limit]
        nsent = self.sent = sent + len(data)
        # Only the bytes past limit_rate_after cost time.
        delay_ms = (max(nsent - after, 0) - max(sent - after, 0)) * 1000 // rate
        if held and not delay_ms:
            # The allowance is spent, bytes wait, and the sent ones cost less than a
            # millisecond at this rate: nginx's "if (limit && c->write->ready && c->sent - sent
            # >= limit - (off_t) (2 * ngx_pagesize)) { c->write->delayed = 1;
            # ngx_add_timer(c->write, 1); }".
            delay_ms = 1
        if delay_ms > 0:
            self.delayed = True
            return data, delay_ms / 1000
        return data, None


def throttled_send(send: _Send, rate: int, after: int, clock: Callable[[], float],
                   sleep: Callable[[float], Awaitable[Any]]) -> _Send:
    """An ASGI ``send`` that passes an ``http.response.body`` stream on no faster than
    ``limit-rate`` (IngressASGI): ``Throttle`` over the body bytes (the head's size is the
    server's, unknown here: not counted, where nginx counts it in ``c->sent``), ``sleep``-ing
    for its delays. As nginx's write filter, a delay after the last bytes of a message is
    waited for when more bytes come, and before the end of the body (``more_body`` False, then
    sent empty after the bytes): nginx's last buffer meets "if (c->write->delayed) { ...
    return NGX_AGAIN; }", so the request ends (and a keep-alive client's next one begins) only
    once that delay ran out -- else back-to-back small responses on one connection outran the
    rate. ``sleep``: the event loop's (``asyncio.sleep``; not imported here: the core's modules
    import no I/O module)."""
    throttle = Throttle(rate, after, clock())
    due = 0.0

    async def wrapped(message: MutableMapping[str, Any]) -> None:
        nonlocal due
        if message.get("type") != "http.response.body":
            await send(message)
            return
        body = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if body:
            throttle.push(bytes(body))
        while True:
            if throttle.delayed:
                wait = due - clock()
                if wait > 0:
                    await sleep(wait)
                throttle.timer_fired()
            data, delay = throttle.release(clock())
            if delay is not None:
                due = clock() + delay
            last = not throttle.held
            if last and not more and throttle.delayed:
                # The body's end waits for the last bytes' delay (the proxy's
                # ``_response_complete`` alike).
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                wait = due - clock()
                if wait > 0:
                    await sleep(wait)
                throttle.timer_fired()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if data or last:
                await send({"type": "http.response.body", "body": data,
                            "more_body": more or not last})
            if last:
                return

    return wrapped
