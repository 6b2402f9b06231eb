"""A fake Kubernetes API server on 127.0.0.1 speaking the list/watch wire protocol.

Enough of the protocol for a watcher: ``GET`` of a collection returns a ``<Kind>List`` with
``metadata.resourceVersion``; ``?watch=true&resourceVersion=N`` streams chunked JSON lines
(``{"type": "ADDED", "object": {...}}``), replays history after ``N`` first, answers a watch
from a compacted version with an ``ERROR`` event carrying a 410 ``Status`` (what a real API
server does), and honours ``fieldSelector=type=...`` and an existence ``labelSelector``.

Tests script it: ``put``/``delete`` objects (watchers get events), ``bookmark``, ``garbage``
(a non-JSON line), ``truncate`` (half a line, then abort), ``drop`` (abort the TCP connection
mid-stream), ``end`` (a normal end, as at a watch's server-side timeout), ``gone`` (an ERROR 410
event on open watches), ``compact`` (forget history), ``fail_next`` (answer the next request
with an HTTP error, optionally with headers such as ``Retry-After``), ``end_watches_at_once``.
Bookmarks go only to watches that asked for them with ``allowWatchBookmarks=true``, as on a real
API server. Every request is recorded in ``requests``.

Lists honour ``limit`` and ``continue`` as the API server does: the first page fixes the list's
resourceVersion and every later page is served from that same snapshot (changes made between
pages are not in the list; the watch from the list's version delivers them); ``expire_continues``
makes outstanding tokens answer ``410 Expired`` ("the provided continue parameter is too old").
``fail_next`` can send any body and Content-Type (an HTML page from a proxy, a cut JSON).

It runs on the test's event loop (asyncio.start_server), one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeKube", "Request", "KINDS", "kubeconfig_dict"]

#: plural -> (apiVersion, kind, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "ingresses": ("networking.k8s.io/v1", "Ingress", True),
    "ingressclasses": ("networking.k8s.io/v1", "IngressClass", False),
    "services": ("v1", "Service", True),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice", True),
    "secrets": ("v1", "Secret", True),
}
_PLURAL = {kind: plural for plural, (_, kind, _) in KINDS.items()}


@dataclass
class Request:
    plural: str
    namespace: str | None
    watch: bool
    query: dict[str, str]


@dataclass
class _Watch:
    plural: str
    namespace: str | None
    accept: Callable[[dict[str, Any]], bool]
    #: The client asked for BOOKMARK events (``allowWatchBookmarks=true``); a real API server
    #: sends none otherwise.
    bookmarks: bool = False
    queue: asyncio.Queue[tuple[str, bytes]] = field(default_factory=asyncio.Queue)


class FakeKube:
    def __init__(self) -> None:
        self.rv = 100
        #: plural -> (namespace, name) -> object
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {p: {} for p in KINDS}
        #: (rv, plural, type, object) for replay on watch.
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.compacted = 0
        self.requests: list[Request] = []
        self.watches: list[_Watch] = []
        self._fail: dict[str, list[tuple[int, dict[str, str], str, bytes | None, str]]] = {}
        #: plural -> how many more requests to leave unanswered (no status line, ever).
        self._hang: dict[str, int] = {}
        #: continue token -> (resourceVersion, items of the snapshot, offset of the next page)
        self._continues: dict[str, tuple[int, list[dict[str, Any]], int]] = {}
        #: When set, lists ignore ``limit`` above this (a server-side page cap).
        self.max_page: int | None = None
        #: Called with each request as it arrives, before it is answered (to script changes
        #: between the pages of a list).
        self.on_request: Callable[[Request], None] | None = None
        #: When set, every watch ends normally right after its replay (a server or proxy that
        #: closes watches at once).
        self.end_watches_at_once = False
        #: When set, ``fieldSelector`` and ``labelSelector`` are ignored (a broken or hostile
        #: server or proxy); the namespace still applies.
        self.ignore_selectors = False
        #: When set, lists carry no ``metadata.resourceVersion``.
        self.omit_list_version = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self.port = 0
        self._token_seq = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for w in self.watches:
            w.queue.put_nowait(("drop", b""))
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    # -- scripting ---------------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or update an object (``kind`` required); open watches get ADDED/MODIFIED."""
        obj = json.loads(json.dumps(obj))
        plural = _PLURAL[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        if KINDS[plural][2]:
            meta.setdefault("namespace", "default")
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        key = (meta.get("namespace", ""), meta["name"])
        etype = "MODIFIED" if key in self.objects[plural] else "ADDED"
        self.objects[plural][key] = obj
        self._emit(plural, etype, obj)
        return obj

    def delete(self, kind: str, namespace: str, name: str) -> None:
        plural = _PLURAL[kind]
        obj = self.objects[plural].pop((namespace, name))
        self.rv += 1
        obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
        self._emit(plural, "DELETED", obj)

    def bookmark(self, plural: str) -> str:
        """A BOOKMARK event at a fresh resourceVersion (as if other kinds changed meanwhile)."""
        self.rv += 1
        apiv, kind, _ = KINDS[plural]
        obj = {"kind": kind, "apiVersion": apiv, "metadata": {"resourceVersion": str(self.rv)}}
        for w in self.watches:
            if w.plural == plural and w.bookmarks:
                w.queue.put_nowait(("line", _event("BOOKMARK", obj)))
        return str(self.rv)

    def end(self, plural: str) -> None:
        """End open watches normally (terminating chunk), as the API server does when a watch's
        timeout expires."""
        self._send(plural, ("end", b""))

    def truncate(self, plural: str, line: bytes) -> None:
        """Send ``line`` without its newline, then abort the connection: a line cut mid-way."""
        self._send(plural, ("line", line))
        self._send(plural, ("drop", b""))

    def garbage(self, plural: str, line: bytes = b"this is {not json") -> None:
        self._send(plural, ("line", line + b"\n"))

    def raw_bytes(self, plural: str, data: bytes) -> None:
        """``data`` as is on open watches (no newline added)."""
        self._send(plural, ("line", data))

    def raw_event(self, plural: str, etype: str, obj: Any) -> None:
        """An event with any object (for invalid objects); not recorded in history."""
        self._send(plural, ("line", _event(etype, obj)))

    def drop(self, plural: str) -> None:
        """Abort open watch connections mid-stream (no terminating chunk)."""
        self._send(plural, ("drop", b""))

    def gone(self, plural: str) -> None:
        """Send ``ERROR`` 410 on open watches and forget history, like an etcd compaction."""
        self.compact()
        self._send(plural, ("line", _event("ERROR", _status(410, "Expired",
                                                            "too old resource version"))))
        self._send(plural, ("end", b""))

    def compact(self) -> None:
        self.compacted = self.rv
        self.history.clear()

    def fail_next(self, plural: str, status: int, times: int = 1,
                  headers: dict[str, str] | None = None, message: str = "scripted failure",
                  body: bytes | None = None, content_type: str = "application/json") -> None:
        """Answer the next ``times`` requests for ``plural`` with ``status``: a ``Status`` JSON
        body by default, or ``body`` as is (sent with ``content_type``)."""
        self._fail.setdefault(plural, []).extend(
            [(status, dict(headers or {}), message, body, content_type)] * times)

    def hang_next(self, plural: str, times: int = 1) -> None:
        """Accept the next ``times`` requests for ``plural`` and never answer them (a wedged
        server or proxy: the TCP connection is up, no status line ever comes)."""
        self._hang[plural] = self._hang.get(plural, 0) + times

    def expire_continues(self) -> None:
        """Outstanding continue tokens expire (etcd compacted their version)."""
        self._continues.clear()

    def clear_failures(self) -> None:
        self._fail.clear()

    def open_watches(self, plural: str) -> int:
        return sum(1 for w in self.watches if w.plural == plural)

    def count(self, plural: str, *, watch: bool | None = None) -> int:
        return sum(1 for r in self.requests
                   if r.plural == plural and (watch is None or r.watch == watch))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(_wait(), timeout)

    # -- internals ---------------------------------------------------------------------------

    def _emit(self, plural: str, etype: str, obj: dict[str, Any]) -> None:
        self.history.append((self.rv, plural, etype, obj))
        for w in self.watches:
            if w.plural == plural and w.accept(obj):
                w.queue.put_nowait(("line", _event(etype, obj)))

    def _send(self, plural: str, item: tuple[str, bytes]) -> None:
        for w in self.watches:
            if w.plural == plural:
                w.queue.put_nowait(item)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            await self._respond(target, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()
            await self._notify()

    async def _respond(self, target: str, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segs = [unquote(s) for s in parts.path.strip("/").split("/")]
        plural = segs[-1]
        namespace = segs[segs.index("namespaces") + 1] if "namespaces" in segs else None
        watch = query.get("watch") in ("true", "1")
        req = Request(plural, namespace, watch, query)
        self.requests.append(req)
        if self.on_request is not None:
            self.on_request(req)
        await self._notify()
        if plural not in KINDS:
            await _send_json(writer, 404, _status(404, "NotFound", f"no {plural}"))
            return
        if self._hang.get(plural):
            self._hang[plural] -= 1
            await asyncio.Event().wait()  # until stop() cancels this connection's task
        fails = self._fail.get(plural)
        if fails:
            code, headers, message, raw, ctype = fails.pop(0)
            if raw is None:
                await _send_json(writer, code, _status(code, _REASONS.get(code, "InternalError"),
                                                       message), headers)
            else:
                await _send_raw(writer, code, raw, dict(headers, **{"Content-Type": ctype}))
            return
        accept = _selector({} if self.ignore_selectors else query, namespace)
        apiv, kind, _ = KINDS[plural]
        if not watch:
            token = query.get("continue")
            if token:
                if token not in self._continues:
                    await _send_json(writer, 410, _status(
                        410, "Expired", "The provided continue parameter is too old to display "
                        "a consistent list result. You can start a new list without the "
                        "continue parameter."))
                    return
                list_rv, items, offset = self._continues.pop(token)
            else:
                list_rv, offset = self.rv, 0
                # A snapshot: later pages show the collection as it was at list_rv.
                items = [json.loads(json.dumps(o)) for _, o in sorted(self.objects[plural].items())
                         if accept(o)]
            limit = int(query.get("limit") or 0)
            if self.max_page is not None and (limit == 0 or limit > self.max_page):
                limit = self.max_page
            page = items[offset:offset + limit] if limit > 0 else items[offset:]
            meta: dict[str, Any] = {} if self.omit_list_version else {
                "resourceVersion": str(list_rv)}
            if limit > 0 and offset + limit < len(items):
                self._token_seq += 1
                nxt = f"tok{self._token_seq}"
                self._continues[nxt] = (list_rv, items, offset + limit)
                meta["continue"] = nxt
                meta["remainingItemCount"] = len(items) - offset - limit
            body = {"kind": f"{kind}List", "apiVersion": apiv, "metadata": meta,
                    # A real API server leaves kind/apiVersion out of list items.
                    "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                              for o in page]}
            await _send_json(writer, 200, body)
            return
        since = int(query.get("resourceVersion") or 0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        w = _Watch(plural, namespace, accept, bookmarks=query.get("allowWatchBookmarks") == "true")
        if not query.get("resourceVersion"):
            # "Start at most recent": a synthetic ADDED of every object, then the changes.
            for _, obj in sorted(self.objects[plural].items()):
                if accept(obj):
                    w.queue.put_nowait(("line", _event("ADDED", obj)))
        elif since and since < self.compacted:
            w.queue.put_nowait(("line", _event("ERROR", _status(410, "Expired",
                                                                "too old resource version"))))
            w.queue.put_nowait(("end", b""))
        else:
            for rv, p, etype, obj in self.history:
                if p == plural and rv > since and accept(obj):
                    w.queue.put_nowait(("line", _event(etype, obj)))
        if self.end_watches_at_once:
            w.queue.put_nowait(("end", b""))
        self.watches.append(w)
        await self._notify()
        try:
            while True:
                what, data = await w.queue.get()
                if what == "drop":
                    writer.transport.abort()
                    return
                if what == "end":
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
        finally:
            self.watches.remove(w)


def _selector(query: dict[str, str], namespace: str | None) -> Callable[[dict[str, Any]], bool]:
    """The list / watch selection as the API server makes it: the namespace, each field selector
    term (a dotted path such as ``type`` or ``metadata.name``, ``=`` or ``!=``) and each label
    that must exist (session 36: the watch of one Secret by name, x52)."""
    terms = [t for t in query.get("fieldSelector", "").split(",") if t]
    labels = [t for t in query.get("labelSelector", "").split(",") if t]

    def value(obj: dict[str, Any], path: str) -> Any:
        cur: Any = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur

    def accept(obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if namespace is not None and meta.get("namespace") != namespace:
            return False
        for term in terms:
            negated = "!=" in term
            path, want = term.split("!=" if negated else "=", 1)
            if (value(obj, path) == want) == negated:
                return False
        obj_labels = meta.get("labels") or {}
        return all(lbl in obj_labels for lbl in labels)

    return accept


_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 410: "Expired",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _event(etype: str, obj: Any) -> bytes:
    return json.dumps({"type": etype, "object": obj}).encode() + b"\n"


async def _send_json(writer: asyncio.StreamWriter, status: int, body: Any,
                     headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in (headers or {}).items())
    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"%sConnection: close\r\n\r\n%s" % (status, len(data), extra, data))
    await writer.drain()


async def _send_raw(writer: asyncio.StreamWriter, status: int, data: bytes,
                    headers: dict[str, str]) -> None:
    extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
    writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n%s"
                 % (status, len(data), extra, data))
    await writer.drain()


def kubeconfig_dict(url: str) -> dict[str, Any]:
    """A kubeconfig (as a dict, for ``KubeConfig.from_dict``) pointing at ``url``, no auth."""
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "nobody",
                                                  "namespace": "default"}}],
        "current-context": "fake",
    }
