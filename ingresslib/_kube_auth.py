"""The basic-auth Secrets of a cluster watch: which are named, which are kept, fetching the rest.

``auth-type: basic`` reads its users from an Opaque Secret (``auth-secret``). Watching every
Opaque Secret would bring every password in the cluster into the process, so the watch of them
(``_kube.AUTH_SECRETS``) starts only once a served Ingress names one, and keeps only the named
ones. ``AuthSecrets`` is that bookkeeping: which Secrets the Ingresses name (re-read when the
Ingresses or classes change), which watch events and list items are kept (``admit``,
``wants``), dropping a Secret that stops being named, and fetching by name (``get``) one named
after its watch listed (the list dropped it then), a failed ``get`` again after the backoff.
Once no Ingress names one any more, the watch stops (``idle``) until one is named again, when
it lists afresh.

One ``AuthSecrets`` serves every watch of named Secrets (``watches``: one per type, the
Opaque ones, and the ``kubernetes.io/tls`` ones when no TLS watch runs): the names wanted are
worked out once, a newly named Secret is fetched once whatever its type, and what each watch
has listed or heard is its own (a list of Opaque Secrets says nothing of a
``kubernetes.io/tls`` one: its ``get`` still under way, or to be retried, is kept).

It does no I/O of its own: ``ClusterWatcher`` lists and watches, and serves the hooks of
``AuthWatch`` (the ``get``, the counters, the backoff, waking the flusher).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from ._resources import Resources
from ._router import _equal_but_versions
from ._store import ResourceStore

__all__ = ["AuthSecrets", "AuthWatch", "auth_secret_refs", "all_auth_refs", "refs_changed"]

# The watch's own logger: these lines are part of what the cluster watch says.
_log = logging.getLogger("ingresslib.kube")

_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
#: The Secret kind's key in the store.
_SECRET_GVK = "v1/Secret"

#: ``(namespace, name)`` of a Secret.
Ref = tuple[str, str]


def auth_secret_refs(ingresses: Iterable[Any]) -> frozenset[tuple[str, str]]:
    """``(namespace, name)`` of the Secrets ``auth-type: basic`` / ``digest`` reads for
    ``ingresses``: what the proxy would look up (``proxy/_basicauth.basic_auth_config``:
    "name" or "namespace/name", another namespace refused), and the Secrets
    ``auth-tls-secret`` (client certificates) and ``proxy-ssl-secret`` (backend TLS) name
    (Opaque Secrets the TLS watch does not list), canaries left out (their annotations are
    ignored)."""
    from ._table import _is_canary
    from .proxy._basicauth import basic_auth_config

    refs: set[tuple[str, str]] = set()
    for ing in ingresses:
        annotations = ing.metadata.annotations
        for key in ("auth-tls-secret", "proxy-ssl-secret"):
            ref = annotations.get(_ANNOTATION_PREFIX + key)
            if ref and not _is_canary(ing):
                # auth-tls-secret's CA Secret (ca.crt), proxy-ssl-secret's (ca.crt, tls.crt,
                # tls.key): Opaque ones, "namespace/name" of the Ingress's own namespace, as
                # the proxy reads them (ingresslib/_tls.py, proxy/_proxy_ssl.py).
                ns, slash, name = "".join(ref.split()).partition("/")
                if slash and name and "/" not in name and ns == ing.metadata.namespace:
                    refs.add((ns, name))
        auth_type = annotations.get(_ANNOTATION_PREFIX + "auth-type")
        if auth_type is None or auth_type.strip() not in ("basic", "digest") \
                or _is_canary(ing):
            continue
        config, _, _ = basic_auth_config(annotations, _ANNOTATION_PREFIX, ing.metadata.namespace)
        if config is not None:
            refs.add((config[1], config[2]))
    return frozenset(refs)


def all_auth_refs(res: Resources) -> AbstractSet[tuple[str, str]]:
    """The default of ``ClusterWatcher(auth_refs=)``: the Secrets of every Ingress."""
    return auth_secret_refs(res.ingresses)


class AuthWatch(Protocol):
    """What ``AuthSecrets`` asks of the watch it serves (``_kube.ClusterWatcher`` answers)."""

    def refs(self, res: Resources) -> AbstractSet[Ref]:
        """The Secrets the served Ingresses of ``res`` name (run off the event loop)."""

    def refs_failed(self, exc: Exception) -> None:
        """``refs`` raised: count it (the last Secrets are kept)."""

    async def get(self, namespace: str, name: str) -> Any:
        """The Secret, read by name from the API server."""

    def retry_get(self, exc: Exception) -> bool:
        """``get`` raised: report it, and say whether to try again (not when there is no such
        Secret)."""

    def keep(self, obj: Any) -> None:
        """Store a fetched Secret, if it is one the watch would keep (the watched type)."""

    def owner(self, obj: Any) -> str | None:
        """The name of the watch (of ``AuthSecrets``' ``watches``) whose selection a fetched
        Secret is, or None (another type: no watch would follow it)."""

    def retry_delay(self, failures: int) -> float:
        """The backoff before the next try, after ``failures`` in a row."""

    def wake(self) -> None:
        """Have the flusher run again (the first snapshot may be waiting, or a retry due)."""


#: The ``AuthSecrets`` of the watches running (``serve --kubernetes`` has one): what
#: :func:`refs_changed` tells.
_RUNNING: weakref.WeakSet[AuthSecrets] = weakref.WeakSet()


def refs_changed(key: object) -> None:
    """Say what, besides the Ingresses, names Secrets for ``auth_refs``: ``serve`` passes the
    ConfigMap's ``ssl-dh-param`` (its Secret is one of the named ones). When ``key`` differs
    from the one a running watch was last told, that watch works out its named Secrets again
    at a flush that runs now: ``AuthSecrets.refresh`` skips the work while the Ingresses and
    classes stay the same, so a ConfigMap edit naming a new Secret waited for the next
    Ingress change. On the event loop."""
    for auth in list(_RUNNING):
        if auth._told != key:
            auth._told = key
            auth._refs_from = None
            auth._watch.wake()


class AuthSecrets:
    """The named auth Secrets of the watches of named Secrets (``watches``: their names; one
    watch of Opaque Secrets by default).

    Each watch calls ``admit``/``wants`` on what it receives, ``tried`` after its first list
    attempt, ``listed`` after each list, naming itself; they wait for ``started`` before
    reading any Secret, and stop when ``idle`` is set (no Secret named any more), to start
    again with a list. The flusher calls ``refresh`` before each snapshot and holds the first
    one back until ``ready`` (later ones are not held: a Secret that comes late answers 503
    meanwhile).
    """

    def __init__(self, store: ResourceStore, watch: AuthWatch, *,
                 where: Callable[[Any], bool] | None = None,
                 watches: Iterable[str] = ("",)) -> None:
        self._store = store
        self._watch = watch
        #: Which stored Secrets are these watches' (``ResourceStore.apply``'s ``where``).
        self._where = where
        self._watches = frozenset(watches)
        #: ``(namespace, name)`` of the auth Secrets kept, and the Ingresses they come from.
        self._wanted: frozenset[Ref] = frozenset()
        self._refs_from: Any = None
        #: Set while a Secret is wanted: the auth Secret watch runs then.
        self.started = asyncio.Event()
        #: Set while none is (the opposite of ``started``): the watch stops.
        self.idle = asyncio.Event()
        self.idle.set()
        #: The watches whose first list was attempted (succeeded or not): the first snapshot
        #: waits for every one.
        self._tried: set[str] = set()
        #: The watches that listed at least once since started: a Secret named since was
        #: dropped by those lists.
        self._listed: set[str] = set()
        #: Per watch, the wanted Secrets its events or lists have spoken for since they became
        #: wanted: a ``get`` that answers later must not overwrite what they said (it may be
        #: older). Per watch: a Secret's type (which watch follows it) is known only once read.
        self._heard: dict[str, set[Ref]] = {w: set() for w in self._watches}
        #: Wanted Secrets whose ``get`` failed: tried again after the backoff (``_get_failures``
        #: in a row).
        self._pending: set[Ref] = set()
        self._get_failures = 0
        self._get_retry_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        #: The last key :func:`refs_changed` gave (None: none yet).
        self._told: object = None
        _RUNNING.add(self)

    # -- the watch's side --------------------------------------------------------------------

    def wants(self, obj: Any) -> bool:
        """Whether ``obj`` (a list item) is a Secret a served Ingress names."""
        return _ref_of(obj) in self._wanted

    def admit(self, etype: str, obj: Any, watch: str = "") -> bool:
        """Whether an event of ``watch`` goes to the store: an ADDED or MODIFIED only for a
        named Secret (any other is dropped, never cached), which it then speaks for."""
        ref = _ref_of(obj)
        if ref in self._wanted:
            self._heard[watch].add(ref)
            return True
        return etype not in ("ADDED", "MODIFIED")

    def tried(self, watch: str = "") -> None:
        """The first list of ``watch`` was attempted, even if it failed: the first snapshot
        waits no longer for it (the routes answer 503 until the Secrets come, as if
        missing)."""
        if watch not in self._tried:
            self._tried.add(watch)
            self._watch.wake()

    def listed(self, watch: str = "") -> None:
        """A list of ``watch`` was stored: it speaks for every Secret of its type wanted now (a
        ``get`` still under way is older). A failed ``get`` is forgotten once every watch
        has spoken for its Secret (the one of its type brought it, whichever that is)."""
        if not self.started.is_set():
            return  # the list of a watch that is being stopped: it speaks for nothing
        self._heard[watch] |= self._wanted
        self._pending = {ref for ref in self._pending
                         if not all(ref in heard for heard in self._heard.values())}
        self._listed.add(watch)

    # -- the flusher's side ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """No Secret is named, or the first list of each watch of them was attempted."""
        return not self._wanted or self._tried >= self._watches

    async def refresh(self) -> None:
        """Re-read which Secrets the Ingresses name (after a change of Ingresses or classes):
        drop the ones no longer named, fetch the newly named ones and the retries due."""
        res = self._store.snapshot()
        source = (res.ingresses, res.ingress_classes)
        before, self._refs_from = self._refs_from, source
        # Skipped in C for the same model objects (the store keeps the objects of unchanged
        # keys). A status write (``status.loadBalancer``, ours or another controller's, on any
        # Ingress) is a new object whose resourceVersion alone moved: the store keeps it
        # without a new generation, and the Secrets named are the same. Compared with ``==``,
        # each one worked the Secrets out again (the served Ingresses sorted off the loop).
        if (before is not None and _equal_but_versions(before[0], source[0])
                and _equal_but_versions(before[1], source[1])):
            if self._pending and self._listed:
                self._fetch(self._retry_due())
            return
        # Off the loop: working out the served Ingresses sorts them all (about 14 ms at 10,000
        # Ingresses), and the loop is proxying.
        try:
            wanted = frozenset(await asyncio.get_running_loop().run_in_executor(
                None, self._watch.refs, res))
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the watch
            self._watch.refs_failed(exc)
            _log.exception("working out the basic-auth Secrets failed; keeping the last ones")
            return
        gone, new = self._wanted - wanted, wanted - self._wanted
        self._wanted = wanted
        for ns, name in sorted(gone):
            self._forget((ns, name))
            self._pending.discard((ns, name))
            # No longer named by a served Ingress: out of the process's memory too.
            self._store.apply("DELETED", {"metadata": {"name": name, "namespace": ns}},
                              kind=_SECRET_GVK, where=self._where)
        if wanted:
            self.started.set()
            self.idle.clear()
        elif self.started.is_set():
            self._stop()
            return
        if self._listed:
            # Listed before these were named, so dropped then: fetch them by name. (Before the
            # first list, that list brings them.)
            self._fetch(new | self._retry_due())

    def _stop(self) -> None:
        """No Secret is named any more: the watch stops (it would bring every Opaque Secret's
        events only to drop them), and forgets what it heard: started again, it lists."""
        _log.info("no served Ingress names a Secret (auth, auth-tls, proxy-ssl); stopping the "
                  "watch of named Secrets")
        self.started.clear()
        self.idle.set()
        self.cancel()
        self._listed.clear()
        for heard in self._heard.values():
            heard.clear()
        self._pending.clear()
        self._get_failures = 0
        self._get_retry_at = 0.0

    def _forget(self, ref: Ref) -> None:
        """No watch has spoken for ``ref`` since now."""
        for heard in self._heard.values():
            heard.discard(ref)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def close(self) -> None:
        """Cancel the ``get`` under way and wait for it."""
        self.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- fetching ----------------------------------------------------------------------------

    def _retry_due(self) -> set[Ref]:
        """The Secrets whose ``get`` failed, once their backoff is over."""
        if asyncio.get_running_loop().time() < self._get_retry_at:
            return set()
        return set(self._pending)

    def _fetch(self, refs: AbstractSet[Ref]) -> None:
        # Held by this watch, not merely shown: under the same name the store may show the TLS
        # watch's Secret (a stale one, that watch lagging after a delete and re-create as
        # Opaque), which says nothing of the Opaque Secret to read.
        todo = {r for r in refs if not self._store.holds((_SECRET_GVK, *r), self._where)}
        if todo:
            task = asyncio.ensure_future(self._get_all(todo))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _get_all(self, refs: set[Ref]) -> None:
        """``get`` each of ``refs``, off the flusher (a slow answer holds back no swap)."""
        failed = False
        for ref in sorted(refs):
            self._forget(ref)
            self._pending.discard(ref)
            try:
                obj = await self._watch.get(*ref)
            except Exception as exc:  # noqa: BLE001 - retried at a later flush
                if not self._watch.retry_get(exc):
                    continue  # no such Secret: its routes answer 503, as from files
                self._pending.add(ref)
                failed = True
                continue
            owner = self._watch.owner(obj)
            if ref not in self._wanted or (owner is not None
                                           and ref in self._heard.get(owner, ())):
                # No longer named, or already spoken for by the watch of its type (which is
                # newer).
                continue
            self._watch.keep(obj)
        if not failed:
            self._get_failures = 0
            return
        # One step of backoff per round of gets, however many Secrets failed in it: ten
        # Secrets named at once while the API server restarts are one failed attempt, to be
        # retried after the first step (as the watches count attempts), not after the tenth.
        self._get_failures += 1
        loop = asyncio.get_running_loop()
        delay = self._watch.retry_delay(self._get_failures)
        self._get_retry_at = loop.time() + delay
        loop.call_later(delay, self._watch.wake)


def _ref_of(obj: Any) -> Ref:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    ns, name = meta.get("namespace"), meta.get("name")
    return (ns if isinstance(ns, str) and ns else "default"), (name if isinstance(name, str)
                                                               else "")
