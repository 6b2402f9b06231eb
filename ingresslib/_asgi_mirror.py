"""``mirror-target`` in ``IngressASGI`` (proxy/_mirror.py has what ingress-nginx and nginx do).

The ASGI interface gives an app no HTTP client: a mirror target is only reachable when its host
names a Service mounted in ``IngressASGI.backends`` -- ``<svc>.<ns>.svc.cluster.local``,
``<svc>.<ns>.svc`` or ``<svc>.<ns>`` (cluster DNS names of a Service), the target's port picking
``"<ns>/<svc>:<port>"`` before ``"<ns>/<svc>"``, as ``backend_for`` keys them. That app is then
called fire and forget (a task of its own, bounded by the route's proxy-read-timeout) with a
copy of the backend's scope: the mirror's path and query (``$request_uri`` expanded from the
request's ``raw_path`` and ``query_string``), ``Host`` = mirror-host, the body when
mirror-request-body is on (sent once the app has read the whole body; with no declared body,
at once). Its answer is dropped, its exceptions logged (once per target as a warning, then at
debug level). Any other target is warned about once, not mirrored. Bounds (per process, as
the proxy's per server): at most 1024 mirror tasks, and 128 MiB of bodies copied or under way;
a body over the route's proxy-body-size (413) or 16 MiB is not mirrored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote_from_bytes, unquote

from .proxy._mirror import MirrorTarget

__all__ = ["mounted_mirror", "mirror_receive"]

_log = logging.getLogger("ingresslib.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[[Scope, Receive, Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: Targets warned about (not a mounted Service, or whose app failed), each once.
_WARNED: set[str] = set()
#: The mirror tasks under way (a reference, so that none is collected before its end).
_TASKS: set[asyncio.Task[None]] = set()
#: The ASCII characters a request target keeps as they are (``%`` too: escapes stay escapes).
_SAFE = "!#$%&'()*+,/:;=?@[]~"
#: The most body bytes kept for one mirror (as the proxy's ``MIRROR_BODY_LIMIT``).
_BODY_LIMIT = 16 * 1024 * 1024
#: The most mirror tasks under way at once, and the most body bytes they hold (as the
#: ProxyServer's ``_MIRRORS_MAX`` / ``_MIRROR_BYTES_MAX``): past either a mirror is dropped.
#: Without them an app slow to answer its mirror (each task bounded only by the route's
#: proxy-read-timeout) let clients pile up tasks and their bodies without end.
_TASKS_MAX = 1024
_BYTES_MAX = 128 * 1024 * 1024
#: The body bytes of the tasks in ``_TASKS``.
_bytes = 0


def _warn_once(target: str, message: str) -> None:
    if target in _WARNED:
        _log.debug("%s", message)
        return
    if len(_WARNED) > 1024:
        _WARNED.clear()
    _WARNED.add(target)
    _log.warning("%s", message)


def mounted_mirror(backends: Mapping[str, Any], mirror: MirrorTarget) -> Any:
    """The mounted app the mirror target's host names, or None (warned once)."""
    parts = mirror.host.lower().rstrip(".").split(".")
    if len(parts) >= 2 and parts[2:] in ([], ["svc"], ["svc", "cluster", "local"]):
        base = f"{parts[1]}/{parts[0]}"
        for key in (f"{base}:{mirror.port}", base):
            app = backends.get(key)
            if app is not None:
                return app
    _warn_once(mirror.target, f"mirror-target {mirror.target!r}: not a Service mounted in "
               "IngressASGI's backends (mirrors go to mounted apps only); not mirrored")
    return None


def _mirror_scope(child: Scope, scope: Scope, mirror: MirrorTarget, body: bytes | None) -> Scope:
    raw = bytes(scope.get("raw_path") or scope.get("path", "/").encode("utf-8"))
    query = bytes(scope.get("query_string") or b"")
    # A request target is ASCII: any other byte percent-encoded (the server's raw bytes kept).
    request_uri = quote_from_bytes(raw + (b"?" + query if query else b""), safe=_SAFE)
    target = mirror.request_target(request_uri, quote_from_bytes(query, safe=_SAFE) or None)
    path, _, qs = target.partition(b"?")
    out = dict(child)
    out["raw_path"] = path
    out["path"] = unquote(path.decode("latin-1"))
    out["query_string"] = qs
    out["root_path"] = ""
    out["method"] = scope.get("method", "GET")
    headers = [(k, v) for k, v in child.get("headers") or ()
               if bytes(k).lower() not in (b"host", b"content-length", b"transfer-encoding",
                                           b"connection")]
    headers.insert(0, (b"host", mirror.host_header))
    if body is not None:
        headers.append((b"content-length", b"%d" % len(body)))
    out["headers"] = headers
    return out


def _start(app: Any, scope: Scope, body: bytes, mirror: MirrorTarget, timeout: float,
           reserved: bool = False) -> None:
    """The mirror's task; ``reserved``: ``body``'s bytes are counted in ``_bytes`` already
    (by its ``_Copy``), given back if the mirror is dropped."""
    global _bytes
    size = len(body)
    if len(_TASKS) >= _TASKS_MAX or (not reserved and _bytes + size > _BYTES_MAX):
        if reserved:
            _bytes -= size
        _log.debug("mirror to %r dropped: %d mirror requests (%d bytes) under way",
                   mirror.target, len(_TASKS), _bytes)
        return

    async def run() -> None:
        given = False

        async def receive() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            return None  # the mirror's answer is dropped

        try:
            async with asyncio.timeout(timeout):
                await app(scope, receive, send)
        except Exception as e:  # never the client's
            _warn_once(mirror.target, f"mirror to {mirror.target!r} failed: "
                       f"{type(e).__name__}: {e}")

    def done(task: asyncio.Task[None]) -> None:
        global _bytes
        _TASKS.discard(task)
        _bytes -= size

    task = asyncio.get_running_loop().create_task(run())
    _TASKS.add(task)
    if not reserved:
        _bytes += size
    task.add_done_callback(done)


class _Copy:
    """The body bytes copied so far for one request's mirror, counted in ``_bytes`` as they
    come (the copies being read share ``_BYTES_MAX`` with the mirrors under way)."""

    __slots__ = ("parts", "size", "kept")

    def __init__(self) -> None:
        self.parts: list[bytes] | None = []
        self.size = 0
        #: The bytes of ``parts`` counted in ``_bytes``.
        self.kept = 0

    def drop(self) -> None:
        global _bytes
        self.parts = None
        _bytes -= self.kept
        self.kept = 0

    def __del__(self) -> None:
        # A request that ends before its body did (the client left, the app stopped reading):
        # its bytes are given back when the request's ``receive`` goes.
        if self.kept:
            try:
                self.drop()
            except Exception:  # pragma: no cover - the interpreter's exit (globals gone)
                pass


def mirror_receive(app: Any, child: Scope, scope: Scope, mirror: MirrorTarget,
                   receive: Receive, timeout: float, limit: int = 0) -> Receive:
    """Start the mirror of the request now (no body to copy), or return a ``receive`` that
    copies the body the backend app reads and starts it at the body's end. ``limit``: the
    route's proxy-body-size (0: none): a body over it is refused (413), never mirrored, as the
    proxy's ``begin_mirror`` bounds its copy (nginx's mirror handler reads the whole body
    first, and client_max_body_size ends the request before any subrequest)."""
    has_body = any(bytes(k).lower() in (b"content-length", b"transfer-encoding")
                   for k, _ in scope.get("headers") or ())
    if not (mirror.request_body and has_body):
        _start(app, _mirror_scope(child, scope, mirror, None), b"", mirror, timeout)
        return receive
    copy = _Copy()
    bound = min(limit, _BODY_LIMIT) if limit > 0 else _BODY_LIMIT

    async def copying() -> Message:
        global _bytes
        message = await receive()
        parts = copy.parts
        if parts is not None and message.get("type") == "http.request":
            data = bytes(message.get("body") or b"")
            n = len(data)
            copy.size += n
            if copy.size > bound or _bytes + n > _BYTES_MAX:
                copy.drop()
            else:
                parts.append(data)
                copy.kept += n
                _bytes += n
                if not message.get("more_body", False):
                    body = b"".join(parts)
                    copy.parts = None
                    copy.kept = 0  # the task's now (``reserved``)
                    _start(app, _mirror_scope(child, scope, mirror, body), body, mirror,
                           timeout, reserved=True)
        return message

    return copying
