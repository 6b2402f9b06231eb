"""The response head to the client: ``_response_head`` serialises it (h11's
``Connection.send(Response)`` written out once) and chooses its body framing (``_FRAME_*``).
No socket, asyncio, ssl or logging handler here."""

from __future__ import annotations

__all__ = ["_FRAME_LENGTH", "_FRAME_CHUNKED", "_FRAME_CLOSE", "_FRAME_NONE", "_response_head"]

#: Downstream body framing of the response being written (what h11's writers would do).
_FRAME_LENGTH, _FRAME_CHUNKED, _FRAME_CLOSE, _FRAME_NONE = range(4)


def _response_head(status: int, reason: bytes, headers: list[tuple[bytes, bytes, bytes]],
                   method: bytes, client_11: bool, client_keep_alive: bool
                   ) -> tuple[bytes, int, bool]:
    """Serialise a response head to the client: ``(bytes, framing, close_after)``.

    This is h11's ``Connection.send(Response)`` written out once (its framing and Connection
    rules, RFC 9112 §6.3 / §9.3, same header order and case) without its per-event state
    machine and header re-validation: every header here came out of h11's parser or is ours.
    - No Content-Length (and not 204/304/HEAD): chunked to an HTTP/1.1 client, else the body
      is delimited by closing the connection ("Connection: close" added).
    - A HEAD response without Content-Length gets no framing header at all, as nginx sends it
      (ngx_http_chunked_header_filter returns early for "(r->method & NGX_HTTP_HEAD)", keeping
      the connection; the upstream's Transfer-Encoding is never passed on): h11 would add
      ``Transfer-Encoding: chunked`` (GET's framing, RFC 9110 §9.3.2 allows either).
    - The client asked for close (or is HTTP/1.0): ``Connection: close`` replaces any
      Connection header ("keep-alive" removed), title case, last -- as h11 writes it.
    """
    framing = _FRAME_LENGTH
    need_close = False
    has_length = False
    close_token = False
    for h in headers:
        n = h[1]
        if n == b"content-length":
            has_length = True
        elif n == b"connection" and b"close" in [t.strip().lower() for t in h[2].split(b",")]:
            close_token = True
    if status in (204, 304) or method == b"HEAD":
        framing = _FRAME_NONE
    if not has_length and status not in (204, 304):
        headers = [h for h in headers if h[1] != b"transfer-encoding"]
        if method != b"HEAD":  # (HEAD: no framing header, _FRAME_NONE)
            if client_11:
                headers.append((b"Transfer-Encoding", b"transfer-encoding", b"chunked"))
                framing = _FRAME_CHUNKED
            else:
                need_close = True
                framing = _FRAME_CLOSE
    if not client_keep_alive or need_close:
        tokens = {t.strip().lower() for _, n, v in headers if n == b"connection"
                  for t in v.split(b",")}
        tokens.discard(b"")
        tokens.discard(b"keep-alive")
        tokens.add(b"close")
        headers = [h for h in headers if h[1] != b"connection"]
        headers.append((b"Connection", b"connection", b", ".join(sorted(tokens))))
        close_token = True
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [b"%s: %s\r\n" % (raw, v) for raw, _, v in headers]
    lines.append(b"\r\n")
    return b"".join(lines), framing, close_token or need_close
