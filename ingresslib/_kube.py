"""Watch a live cluster with lightkube (the ``ingresslib[k8s]`` extra) and feed a ResourceStore.

Per kind: **list** (no resourceVersion: the latest state), then **watch from the list's
resourceVersion**, asking for bookmarks (``allowWatchBookmarks=true``). A watch the server ends
normally is re-opened from the last resourceVersion seen, without a re-list (one that ended at
once with nothing is backed off, so it cannot spin). ``410 Gone`` ("the requested
resourceVersion is too old", API concepts, *Efficient detection of changes*), as an ``ERROR``
event or as the status of the watch request, is answered by a fresh list, which also catches up
deletes missed meanwhile (``ResourceStore.replace_all``); 410 after 410 is backed off. So is a
version the server has not reached (``ResourceVersionTooLarge``: etcd restored from a backup),
which is then re-listed too, as client-go's reflector does. Any other
failure (connection refused or dropped, HTTP error, a line that is not JSON) is logged with its
HTTP status, counted, and followed by a reconnect from the last resourceVersion seen, after an
exponential, capped, jittered backoff, or after the server's ``Retry-After`` when longer (429).
An error body that is not a ``Status`` keeps its HTTP status and ``Retry-After``; an ``ERROR``
event whose reason is ``Expired``/``Gone`` is a 410 whatever its code (client-go's reflector).
401/403 are logged as errors naming what to check, and retried. Bursts of events are
debounced (100 ms by default) into one ``on_snapshot(Resources)`` call, so an endpoint storm
causes one table swap (ecosystem.md §7).

Nothing here stops the watcher except cancellation or the ``stop`` event: SEMANTICS §11, "an
invalid update keeps the last good table and reports why". An invalid object is kept out of the
snapshot by the store (its last valid version stays).

lightkube is only used for configuration, authentication and transport; objects are kept as the
raw wire dicts (lightkube decodes into dict subclasses here, never into its typed models), so a
field lightkube's models would reject reaches our validator, which reports it in the API
server's words, instead of breaking the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Protocol

from ._resources import Resources
from ._store import EVENT_TYPES, ResourceStore

__all__ = ["ClusterWatcher", "WatchStats", "Backoff", "watch_cluster", "WATCHED_KINDS",
           "load_kube_config"]

_log = logging.getLogger("ingresslib.kube")

SnapshotCallback = Callable[[Resources], "Awaitable[None] | None"]


class WatchObserver(Protocol):
    """Per-kind watch events for a metrics collector (``_metrics.Metrics`` is one)."""

    def watch_event(self, kind: str, event_type: str) -> None: ...
    def watch_error(self, kind: str) -> None: ...
    def watch_reconnect(self, kind: str) -> None: ...
    def watch_relist(self, kind: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial * factor**(attempt-1)``, capped at ``maximum``, then spread by
    ``±jitter`` (a fraction) so that N replicas restarting together do not reconnect in step.
    The defaults follow client-go's reflector (800 ms initial, 30 s cap, reset after a minute
    of health)."""

    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    #: A watch that stayed up this long counts as healthy: its failure starts the count afresh.
    reset_after: float = 60.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))


@dataclass(frozen=True, slots=True)
class _Kind:
    """One watched collection: lightkube's resource (for its URL) and our selectors."""

    kind: str
    api_version: str
    module: str
    namespaced: bool
    fields: Mapping[str, str] | None = None
    labels: Mapping[str, Any] | None = None


#: What ``serve --kubernetes`` watches. Secrets only of ``type: kubernetes.io/tls``, by field
#: selector, so other Secrets are never read (the API server filters them out).
#: EndpointSlices only with the ``kubernetes.io/service-name`` label: the ones that belong to a
#: Service (ecosystem.md §7).
WATCHED_KINDS: tuple[_Kind, ...] = (
    _Kind("Ingress", "networking.k8s.io/v1", "networking_v1", True),
    _Kind("IngressClass", "networking.k8s.io/v1", "networking_v1", False),
    _Kind("Service", "v1", "core_v1", True),
    _Kind("EndpointSlice", "discovery.k8s.io/v1", "discovery_v1", True,
          labels={"kubernetes.io/service-name": "__exists__"}),
    _Kind("Secret", "v1", "core_v1", True, fields={"type": "kubernetes.io/tls"}),
)


@dataclass(slots=True)
class WatchStats:
    """Counters a metrics collector can read (all monotonic except the timestamps and ``synced``).
    """

    #: ADDED/MODIFIED/DELETED events applied.
    events: int = 0
    bookmarks: int = 0
    #: Full lists (the first one per kind included).
    lists: int = 0
    #: Re-lists caused by an unusable resourceVersion: ``410 Gone``, or one the server has not
    #: reached (``ResourceVersionTooLarge``).
    relists: int = 0
    #: Watch or list attempts that failed (HTTP errors, refused or dropped connections).
    stream_errors: int = 0
    #: Lines that were not a watch event (not JSON, wrong shape) and events that could not be keyed.
    garbage: int = 0
    #: Objects that failed validation (the store keeps their last valid version).
    invalid_objects: int = 0
    #: Reconnects after an error (each preceded by a backoff sleep).
    reconnects: int = 0
    #: Reconnects of watches that were silent for ``idle_timeout`` (no backoff, not an error).
    idle_reconnects: int = 0
    #: ``on_snapshot`` calls, and those that raised.
    snapshots: int = 0
    callback_errors: int = 0
    #: ``time.time()`` of the last delivered snapshot and of the last error, or 0.
    last_snapshot_time: float = 0.0
    last_error_time: float = 0.0
    last_error: str = ""
    #: Per kind, the resourceVersion the next watch starts from ("" before the first list).
    resource_versions: dict[str, str] = field(default_factory=dict)


def _without_lightkube(e: ImportError) -> ImportError:
    # lightkube is an optional extra: say how to get it, where a bare "No module named
    # 'lightkube'" would leave a library user guessing.
    return ImportError(f"watching a cluster needs lightkube: pip install 'ingresslib[k8s]' ({e})")


def load_kube_config(kubeconfig: str | PathLike[str] | None = None, *,
                     context: str | None = None) -> Any:
    """A lightkube ``SingleConfig``: from ``kubeconfig`` when given, else in-cluster (the pod's
    service account) when run in a pod, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    try:
        from lightkube import KubeConfig
    except ImportError as e:
        raise _without_lightkube(e) from e

    conf = KubeConfig.from_file(kubeconfig) if kubeconfig is not None else KubeConfig.from_env()
    return conf.get(context_name=context)


class _RawMeta:
    __slots__ = ("resourceVersion",)

    def __init__(self, meta: Any) -> None:
        rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
        self.resourceVersion = rv if isinstance(rv, str) else None


class _RawObject(dict[str, Any]):
    """What lightkube decodes watch and list items into: the wire dict itself. lightkube reads
    ``.metadata.resourceVersion`` to resume its own reconnects."""

    @property
    def metadata(self) -> _RawMeta:
        return _RawMeta(self.get("metadata"))

    @classmethod
    def from_dict(cls, d: Any, lazy: bool = True) -> _RawObject:
        # How lightkube releases before 1.0 build objects from decoded JSON.
        return cls(d)


def _raw_resource(spec: _Kind) -> Any:
    import importlib

    from lightkube.core import resource as lk_res

    typed = getattr(importlib.import_module(f"lightkube.resources.{spec.module}"), spec.kind)
    base = lk_res.NamespacedResourceG if spec.namespaced else lk_res.GlobalResource
    return type(f"Raw{spec.kind}", (_RawObject, base), {"_api_info": typed._api_info})


def _rbac_resource(spec: _Kind) -> tuple[str, str]:
    """``(plural, API group)`` as RBAC rules name the kind: ``("ingresses",
    "networking.k8s.io")``, ``("services", "")``."""
    info = _raw_resource(spec)._api_info
    return info.plural, info.resource.group


def _selectors(spec: _Kind) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.fields:
        out["fields"] = dict(spec.fields)
    if spec.labels:
        from lightkube import operators

        out["labels"] = {k: operators.exists() if v == "__exists__" else v
                         for k, v in spec.labels.items()}
    return out


def _selected(spec: _Kind, obj: Any) -> bool:
    """Whether ``obj`` matches the kind's selectors, checked again on our side: a server or
    proxy that ignores ``fieldSelector``/``labelSelector`` must not bring other Secrets (an
    Opaque one holds passwords) into the process, nor EndpointSlices that belong to no
    Service."""
    if not isinstance(obj, Mapping):
        return True  # not ours to judge: the store reports it
    for key, want in (spec.fields or {}).items():
        if obj.get(key) != want:
            return False
    if spec.labels:
        meta = obj.get("metadata")
        labels = meta.get("labels") if isinstance(meta, Mapping) else None
        labels = labels if isinstance(labels, Mapping) else {}
        for key, want in spec.labels.items():
            if key not in labels or (want != "__exists__" and labels[key] != want):
                return False
    return True


async def _watch_once(client: Any, res: Any, rv: str, ns: dict[str, str],
                      sel: dict[str, Any]) -> Any:
    """One watch request, from ``rv``, yielding ``(type, object)`` until the server ends it.

    Not ``AsyncClient.watch``, for two reasons. It cannot ask for bookmarks (API concepts,
    *Watch bookmarks*; the API reference: "allowWatchBookmarks requests watch events with type
    "BOOKMARK""): without the parameter the server sends none, and a quiet kind's resourceVersion
    ages until its watch resumes into ``410 Gone`` and a full re-list. And it re-opens a watch that
    ended normally by itself, at once and forever, out of our sight: a server that closes every
    watch straight away becomes a busy loop. Here a normal end returns to the caller, which
    re-watches from the last resourceVersion (no re-list) and backs off when watches are very
    short. lightkube still builds the URL, authenticates, sends, and decodes the lines (an
    ``ERROR`` event raises its ``ApiError``, e.g. 410).
    """
    from lightkube.core.generic_client import WatchDriver
    from lightkube.core.selector import build_selector

    gc = client._client
    labels, fields = sel.get("labels"), sel.get("fields")
    br = gc.prepare_request(
        "list", res=res, namespace=ns.get("namespace"), watch=True,
        params={"resourceVersion": rv, "allowWatchBookmarks": "true",
                "labelSelector": build_selector(labels) if labels else None,
                "fieldSelector": build_selector(fields, for_fields=True) if fields else None})
    wd: Any = WatchDriver(br, gc._client.build_request)
    resp = await gc.send(wd.get_request(timeout=gc._watch_timeout), stream=True)
    try:
        if resp.is_error:
            await resp.aread()  # the Status body, so the error says what the server said
            gc.raise_for_status(resp)
        # Lines split here rather than with ``aiter_lines``, which buffers until a newline
        # comes: a server that never sends one must not make us buffer without end.
        limit = _MAX_EVENT_BYTES
        buf = bytearray()
        scanned = 0
        async for chunk in resp.aiter_bytes():
            buf += chunk
            while (i := buf.find(b"\n", scanned)) >= 0:
                line = bytes(buf[:i])
                del buf[:i + 1]
                scanned = 0
                if line.strip():
                    yield wd.process_one_line(line)
            scanned = len(buf)
            if scanned > limit:
                raise _EventTooLarge(f"watch event longer than {limit} bytes without a newline")
        if buf.strip():
            yield wd.process_one_line(bytes(buf))
    finally:
        await resp.aclose()


class _EventTooLarge(ValueError):
    pass


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling. An error response whose
    body is not a ``Status`` (an HTML page from a proxy, a cut body, labelled JSON) makes
    lightkube's ``ApiError`` fail to decode it: what reaches us is then a ``JSONDecodeError``
    raised while handling the ``HTTPStatusError`` that still holds the response."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 8:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _status_of(exc: BaseException) -> Any:
    for e in _chain(exc):
        status = getattr(e, "status", None)
        if status is not None and not isinstance(status, (int, str)):
            return status
    return None


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of an error: the ``Status`` of an ``ERROR`` event or of an ``ApiError``,
    else the response's own status (a watch request may itself be answered ``410 Gone``, and
    its body may be no ``Status`` at all)."""
    code = getattr(_status_of(exc), "code", None)
    if isinstance(code, int) and code:
        return code
    for e in _chain(exc):
        code = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _is_expired(exc: BaseException) -> bool:
    """``410 Gone``: the resourceVersion (or a list's continue token) was compacted away.

    As client-go's reflector decides it (``tools/cache/reflector.go``, ``isExpiredError``: "In
    Kubernetes 1.17 and earlier, the api server returns both apierrors.StatusReasonExpired and
    apierrors.StatusReasonGone for HTTP 410 (Gone) status code responses. In 1.18 the kube
    server is more consistent and always returns apierrors.StatusReasonExpired" ... ``return
    apierrors.IsResourceExpired(err) || apierrors.IsGone(err)``): by the ``Status`` reason,
    ``Expired`` or ``Gone``, or by the code 410."""
    reason = getattr(_status_of(exc), "reason", None)
    return reason in ("Expired", "Gone") or _status_code(exc) == 410


def _is_too_large(exc: BaseException) -> bool:
    """The watch asked for a resourceVersion the API server has not reached: etcd was restored
    from a backup (versions went back in time), or this API server's cache lags behind the one
    that served the list. kube-apiserver answers after waiting 3 s: ``504``, reason ``Timeout``,
    cause ``ResourceVersionTooLarge``. Retrying the same version can wait forever (a restore
    never catches up, and serves stale objects if it does); client-go's reflector re-lists with
    ``resourceVersion=""`` instead. Recognised as it does (``isTooLargeResourceVersionError``:
    the cause, or a ``Timeout`` whose cause message or message says "Too large resource
    version", from 1.17.0-1.18.5 servers)."""
    status = _status_of(exc)
    if status is None:
        return False
    causes = getattr(getattr(status, "details", None), "causes", None) or []
    if any(getattr(c, "reason", None) == "ResourceVersionTooLarge" for c in causes):
        return True
    if getattr(status, "reason", None) != "Timeout":
        return False
    return (any(getattr(c, "message", None) == "Too large resource version" for c in causes)
            or "Too large resource version" in (getattr(status, "message", None) or ""))


def _retry_after(exc: BaseException) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (429 Too Many Requests, some 503s)."""
    value = None
    for e in _chain(exc):
        headers = getattr(getattr(e, "response", None), "headers", None)
        if headers is not None:
            value = headers.get("Retry-After")
            break
    try:
        return min(_RETRY_AFTER_CAP, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from the API server; the backoff applies


#: How the watcher waits between attempts (a module attribute so tests can record the delays).
_backoff_sleep = asyncio.sleep
#: The longest watch event line accepted. An object is at most about 1.5 MiB (etcd's default
#: request limit, ``--max-request-bytes``); 16 MiB leaves room for any real event.
_MAX_EVENT_BYTES = 16 * 1024 * 1024
#: Never wait longer than this for a ``Retry-After``, whatever the server says.
_RETRY_AFTER_CAP = 300.0
#: A watch that ends normally sooner than this with no event is a "very short watch" (client-go's
#: reflector): re-watching at once would spin, so it is backed off like an error.
_SHORT_WATCH = 1.0


class ClusterWatcher:
    """List-then-watch the kinds ingresslib needs and call ``on_snapshot(Resources)`` after each
    debounced burst of changes (``Router.update`` fits; a coroutine function is awaited).

    ``namespace=None`` watches every namespace. ``config`` is a lightkube ``SingleConfig`` or
    ``KubeConfig`` (default: :func:`load_kube_config` of ``kubeconfig``); ``client`` an existing
    lightkube ``AsyncClient``. ``backoff`` and ``debounce`` are injectable for tests.

    The first snapshot is delivered once every kind has been listed, so a table is never built
    from Ingresses without their Services. ``synced`` is set then; ``stats`` holds the counters.
    """

    def __init__(
        self,
        on_snapshot: SnapshotCallback,
        *,
        namespace: str | None = None,
        kubeconfig: str | PathLike[str] | None = None,
        config: Any = None,
        client: Any = None,
        store: ResourceStore | None = None,
        debounce: float = 0.1,
        backoff: Backoff = Backoff(),
        kinds: tuple[_Kind, ...] = WATCHED_KINDS,
        seed: int | None = None,
        idle_timeout: float | None = 300.0,
        list_chunk_size: int | None = 500,
        metrics: WatchObserver | None = None,
    ) -> None:
        self.on_snapshot = on_snapshot
        #: Told about each event, error, reconnect and re-list per kind (``_metrics.Metrics``
        #: implements this), on top of the aggregate ``stats``.
        self.metrics = metrics
        self.namespace = namespace
        self.store = store if store is not None else ResourceStore()
        self.debounce = debounce
        self.backoff = backoff
        self.kinds = kinds
        #: Reconnect a watch that delivered nothing (not even a bookmark) for this long.
        self.idle_timeout = idle_timeout
        #: Page size of lists (client-go pages by 500), so huge clusters list in pieces.
        self.list_chunk_size = list_chunk_size
        self.stats = WatchStats()
        self.synced = asyncio.Event()
        self._kubeconfig = kubeconfig
        self._config = config
        self._client = client
        self._rng = random.Random(seed)
        self._dirty = asyncio.Event()
        self._listed: set[str] = set()
        self._delivered_generation = -1

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Watch until ``stop`` is set (or the task is cancelled)."""
        client = self._client
        own_client = client is None
        if client is None:
            try:
                from lightkube import AsyncClient
            except ImportError as e:
                raise _without_lightkube(e) from e

            config = self._config if self._config is not None else load_kube_config(
                self._kubeconfig)
            client = AsyncClient(config=config)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._run_kind(client, spec)) for spec in self.kinds]
                tasks.append(tg.create_task(self._flusher()))
                stopper = tg.create_task((stop or asyncio.Event()).wait())
                await stopper
                for t in tasks:
                    t.cancel()
        finally:
            if own_client:
                await client.close()

    async def _run_kind(self, client: Any, spec: _Kind) -> None:
        res = _raw_resource(spec)
        sel = _selectors(spec)
        ns: dict[str, str] = {}
        if spec.namespaced:
            # lightkube reads namespace=None as "the config's default namespace"; "*" is all.
            ns["namespace"] = self.namespace or "*"
        gvk = f"{spec.api_version}/{spec.kind}"
        rv: str | None = None
        failures = 0
        #: 410s in a row with no event between them (each re-lists; from the second on, with
        #: backoff, so a server that answers 410 to everything is not hammered with lists).
        gone_streak = 0
        #: The last re-list was for a version the server had not reached: its success does not
        #: reset the backoff, so a lagging API server is not re-listed every few seconds.
        unreached = False
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            delivered = 0
            phase = "list"
            try:
                if rv is None:
                    rv = await self._list(client, res, spec, gvk, ns, sel)
                    if not unreached:
                        failures = 0
                phase = "watch"
                stream = _watch_once(client, res, rv, ns, sel)
                async for etype, obj in _idle_guard(stream, self.idle_timeout):
                    delivered += 1
                    gone_streak = 0
                    unreached = False
                    new_rv = obj.metadata.resourceVersion if isinstance(obj, _RawObject) else None
                    if etype == "BOOKMARK":
                        self.stats.bookmarks += 1
                    elif etype in ("ADDED", "MODIFIED") and not _selected(spec, obj):
                        # Outside the selection: what the API server reports as DELETED when
                        # an object stops matching a selector.
                        self._apply("DELETED", obj, gvk)
                    else:
                        self._apply(etype, obj, gvk)
                    if self.metrics is not None and etype in EVENT_TYPES:
                        # Only the known types: the type is a metric label, and a server that
                        # sends made-up types must not grow the metrics without bound.
                        self.metrics.watch_event(spec.kind, etype)
                    if new_rv:
                        rv = new_rv
                        self.stats.resource_versions[spec.kind] = rv
                # A normal end: the server closes watches after their timeout (API concepts,
                # *Efficient detection of changes*). Resume from the last resourceVersion, no
                # re-list; but a watch that ended at once with nothing is backed off, not spun.
                if delivered == 0 and loop.time() - started < _SHORT_WATCH:
                    failures += 1
                    _log.debug("%s watch ended at once with no event; backing off", spec.kind)
                    await _backoff_sleep(self.backoff.delay(failures, self._rng))
                else:
                    failures = 0
                continue
            except asyncio.CancelledError:
                raise
            except _Idle:
                # Nothing for idle_timeout: the connection may be half-open (a NAT or load
                # balancer forgot it), which TCP alone would never notice. Resume at once.
                self.stats.idle_reconnects += 1
                _log.debug("%s watch idle for %.0f s; reconnecting", spec.kind, self.idle_timeout)
                continue
            except Exception as exc:  # noqa: BLE001 - nothing stops the watcher (SEMANTICS §11)
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # stopping: an error raised while unwinding is not a reason to retry
                if _is_expired(exc):
                    # "410 Gone": our resourceVersion was compacted away (API concepts: clients
                    # "must handle the case by recognizing the status code 410 Gone, clearing
                    # their local cache, performing a new get or list operation, and starting the
                    # watch from the resourceVersion that was returned"). It comes as an ERROR
                    # event or as the watch response's own status. Re-list now; the list is the
                    # catch-up. Only 410 after 410 (nothing in between) waits for the backoff.
                    self.stats.relists += 1
                    if self.metrics is not None:
                        self.metrics.watch_relist(spec.kind)
                    _log.info("%s watch expired (410 Gone); re-listing", spec.kind)
                    rv = None
                    gone_streak += 1
                    if gone_streak > 1:
                        await _backoff_sleep(self.backoff.delay(gone_streak - 1, self._rng))
                    continue
                if loop.time() - started > self.backoff.reset_after:
                    failures = 0
                failures += 1
                self._error(spec, exc, phase)
                if self.metrics is not None:
                    self.metrics.watch_error(spec.kind)
                delay = self.backoff.delay(failures, self._rng)
                asked = _retry_after(exc)
                if asked is not None and asked > delay:
                    # 429 Too Many Requests (API priority and fairness) says when to come back.
                    delay = asked
                await _backoff_sleep(delay)
                if _is_too_large(exc):
                    # The version is unusable, not just early: re-list (the list asks for the
                    # latest state, so it cannot be "too large"), after the backoff, as
                    # client-go's reflector does.
                    rv = None
                    unreached = True
                    self.stats.relists += 1
                    if self.metrics is not None:
                        self.metrics.watch_relist(spec.kind)
                    continue
                self.stats.reconnects += 1
                if self.metrics is not None:
                    self.metrics.watch_reconnect(spec.kind)

    async def _list(self, client: Any, res: Any, spec: _Kind, gvk: str, ns: dict[str, str],
                    sel: dict[str, Any]) -> str:
        listing = client.list(res, chunk_size=self.list_chunk_size, **ns, **sel)
        items = [dict(o) async for o in listing]
        items = [o for o in items if _selected(spec, o)]
        try:
            rv: str = listing.resourceVersion
        except Exception:  # noqa: BLE001 - lightkube's NotReadyError: the list carried none
            # A list without metadata.resourceVersion (a broken server or proxy). Retrying
            # would get the same list forever; watch from "" instead: "Start at most recent",
            # which begins with a synthetic ADDED of every object (API concepts, *Semantics for
            # watch*), so nothing that exists is missed.
            _log.warning("%s list carried no resourceVersion; watching from the most recent",
                         spec.kind)
            rv = ""
        invalid = self.store.invalid_total
        namespace = self.namespace if spec.namespaced else None
        unkeyable: list[str] = []
        # A list item that cannot even be keyed (no name) is skipped and counted, like such a
        # watch event: failing the whole list would hold the kind (and the first table) back
        # forever, since every re-list returns it again.
        self.store.replace_all(gvk, items, namespace=namespace, unkeyable=unkeyable)
        for why in unkeyable:
            self.stats.garbage += 1
            self._note(f"unusable {spec.kind} list item: {why}")
            _log.warning("ignoring unusable %s list item: %s", spec.kind, why)
        self.stats.invalid_objects += self.store.invalid_total - invalid
        self.stats.lists += 1
        self.stats.resource_versions[spec.kind] = rv
        _log.debug("listed %d %s at resourceVersion %s", len(items), spec.kind, rv)
        self._listed.add(spec.kind)
        self._dirty.set()
        return rv

    def _apply(self, etype: str, obj: Any, gvk: str) -> None:
        invalid = self.store.invalid_total
        try:
            self.store.apply(etype, obj, kind=gvk)
        except ValueError as exc:
            self.stats.garbage += 1
            self._note(f"unusable {etype} event: {exc}")
            _log.warning("ignoring unusable %s event: %s", etype, exc)
            return
        self.stats.events += 1
        self.stats.invalid_objects += self.store.invalid_total - invalid
        self._dirty.set()

    def _error(self, spec: _Kind, exc: Exception, phase: str = "watch") -> None:
        transport = _is_transport_error(exc)
        if transport:
            self.stats.stream_errors += 1
        else:
            self.stats.garbage += 1
        code = _status_code(exc)
        # docs/cluster.md: "The failures are logged with the HTTP status."
        what = f"HTTP {code} {type(exc).__name__}" if code is not None else type(exc).__name__
        detail = str(exc) or "no detail"  # httpx's timeouts carry no message
        self._note(f"{spec.kind} {phase}: {what}: {detail}")
        if code in (401, 403):
            # Not transient: credentials or RBAC. Still retried (a fixed Role takes effect
            # without a restart), but said loudly, with what to fix in RBAC's own terms (the
            # resource, its API group, the verb, the scope): an error body from a proxy in
            # front of the API server says none of it.
            plural, group = _rbac_resource(spec)
            scope = (f"in namespace {self.namespace}" if spec.namespaced and self.namespace
                     else "cluster-wide")
            if code == 401:
                fix = (f"the API server did not accept the credentials for the {phase} of "
                       f"{plural} (token, client certificate, kubeconfig user)")
            else:
                fix = (f'{phase} of {plural} (API group "{group}") {scope} was refused: grant '
                       f"the ServiceAccount get, list and watch on it")
            _log.error("%s list/watch denied (%s: %s): %s; retrying", spec.kind, what, detail, fix)
        else:
            _log.warning("%s %s failed (%s: %s); retrying", spec.kind, phase, what, detail)

    def _note(self, msg: str) -> None:
        self.stats.last_error = msg
        self.stats.last_error_time = time.time()

    # -- debounce ----------------------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            await self._dirty.wait()
            # Trailing-edge debounce: everything arriving in this window is one swap.
            await asyncio.sleep(self.debounce)
            self._dirty.clear()
            if len(self._listed) < len(self.kinds):
                continue  # wait for every kind's first list: no table without its Services
            await self._deliver()

    async def _deliver(self) -> None:
        generation = self.store.generation
        if generation == self._delivered_generation and self.synced.is_set():
            return
        snapshot = self.store.snapshot()
        self._delivered_generation = generation
        try:
            result = self.on_snapshot(snapshot)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - a failing callback keeps the watch going
            self.stats.callback_errors += 1
            self._note(f"on_snapshot: {type(exc).__name__}: {exc}")
            _log.exception("on_snapshot failed; keeping the watch going")
        else:
            self.stats.snapshots += 1
            self.stats.last_snapshot_time = time.time()
        self.synced.set()


class _Idle(Exception):
    pass


async def _idle_guard(stream: Any, timeout: float | None) -> Any:
    """Yield from ``stream``, raising ``_Idle`` when nothing arrives for ``timeout`` seconds.

    ``asyncio.timeout``, not ``wait_for``: on Python 3.11, ``wait_for`` returns the inner
    result when the awaited item is ready at the moment the task is cancelled, swallowing the
    cancellation -- with a busy stream, nearly every time. The watcher then ignored ``stop``
    and ``asyncio.run`` hung at exit waiting for it."""
    it = stream.__aiter__()
    try:
        while True:
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    item = await it.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                if deadline.expired():
                    raise _Idle() from None
                raise  # the stream's own (a socket timeout): an error, not silence
            yield item
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            # A stream interrupted mid-item may still be winding down: aclose() then says
            # "already running", and that must not mask the cancel.
            with contextlib.suppress(RuntimeError):
                await aclose()


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    if _status_code(exc) is not None:
        return True  # an HTTP error response, whatever its body
    # lightkube 1.x talks through httpx2, older releases through httpx; ApiError (an HTTP status)
    # derives from their HTTPError too.
    for mod in type(exc).__mro__:
        if mod.__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "lightkube"):
            return True
    return False


async def watch_cluster(
    on_snapshot: SnapshotCallback,
    *,
    namespace: str | None = None,
    kubeconfig: str | PathLike[str] | None = None,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> ClusterWatcher:
    """Watch the cluster until ``stop`` is set; ``serve --kubernetes`` calls this with
    ``on_snapshot=router.update``. Returns the watcher (its ``stats``) once stopped. ``options``
    go to :class:`ClusterWatcher`."""
    watcher = ClusterWatcher(on_snapshot, namespace=namespace, kubeconfig=kubeconfig, **options)
    await watcher.run(stop)
    return watcher
