"""``serve`` from files: ``Reloader`` polls the manifests (and the ``--config`` ConfigMap) and
swaps a new router in when they change.

SEMANTICS §11: "Reloads (file changes, API watch) build a new table off the hot path and swap it
atomically: requests in flight finish on the old one, nothing is dropped, an invalid update keeps
the last good table and reports why."

The files are polled (mtime, size, inode and ctime, about once a second: no inotify dependency,
and it works for ConfigMap volume mounts, whose symlink swap an inotify watch on the file
misses); SIGHUP reads them at once (``request_reload``). A folder that cannot be listed fails
the reload (the last good table stays) instead of being read as empty. A change loads and
builds the new Router and TLS contexts in a worker thread, then swaps one attribute on the
event loop thread. The ``--config`` ConfigMap file is polled the same way (with
``--kubernetes`` too) and applied live, as ingress-nginx applies edits of its ConfigMap; an
invalid edit keeps the settings serving and logs why; invalid manifests keep the last good
table but do not hold back a valid ConfigMap edit. A swap is all or nothing (``_undo_of``); a
reload that failed for a reason that may pass (``_transient``) is tried again with a bounded
backoff (``RETRY_FIRST`` .. ``RETRY_MAX``), a cluster snapshot's too (``SnapshotRetry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ._errors import ValidationError
from ._fields import fresh_lines
from ._log_once import OncePerKind
from ._resources import Resources
from ._serve_build import _served_by, build_router
from ._serve_digest import config_digest
from ._serve_notes import (
    _invalid_text,
    _log_fresh_notes,
    _log_route_warnings,
    _LoggedNotes,
    _notes_of,
    _table_notes,
)

if TYPE_CHECKING:
    from ._kube import ClusterWatcher

__all__ = ["Reloader", "shutdown_timeout"]

#: serve's graceful stop bound when neither ``--shutdown-timeout`` nor the ConfigMap's
#: ``worker-shutdown-timeout`` gives one.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


def shutdown_timeout(args: Any, config: Any) -> float:
    """How long ``serve``'s graceful stop lets requests in flight finish (and TCP services'
    connections of a removed port go on): ``--shutdown-timeout`` when given, else the
    ConfigMap's ``worker-shutdown-timeout`` (``config``: the ``ServerConfig`` serving, the last
    one a reload applied), else 10 s. The flag wins: ingress-nginx has none, so one given on
    the command line is the operator's own choice over the ConfigMap's."""
    flag = getattr(args, "shutdown_timeout", None)
    if flag is not None and not getattr(flag, "not_given", False):   # (_cli._NotGiven)
        return float(flag)
    key = getattr(config, "worker_shutdown_timeout", None)
    return DEFAULT_SHUTDOWN_TIMEOUT if key is None else float(key)

_log = logging.getLogger("ingresslib.serve")


#: A file's state as the poller compares it: ``(mtime_ns, size, inode, ctime_ns)``; a missing
#: file is ``_MISSING``, a folder that cannot be listed ``(_UNREADABLE, errno)``.
_State = tuple[int, ...]
_MISSING: _State = (-1, -1)
_UNREADABLE = -2


def _snapshot(paths: Sequence[str]) -> dict[str, _State]:
    """``{file: state}`` of every manifest file under ``paths`` (missing ones too, so a deletion
    is a change), found the way ``load_manifests`` finds them (``_load._walk``: hidden files and
    folders skipped, symlinked folders not followed), and a folder that cannot be listed as
    ``(_UNREADABLE, errno)`` (so that it becoming listable again is a change).

    The state holds the inode and the ctime besides mtime and size: a file replaced by another
    of the same size whose timestamp was kept (``cp -p``, ``tar``, ``rsync -t``, a ConfigMap's
    ``..data`` swap onto files written in one clock tick) has a new inode, and an in-place
    rewrite whose mtime was set back still moves the ctime, which no one can set. Never raises:
    a folder removed while it is walked (``rm -rf``, a checkout) is a change like any other."""
    from ._load import manifest_files

    out: dict[str, _State] = {}

    def add(f: str) -> None:
        try:
            st = os.stat(f)
            out[f] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        except OSError:
            out[f] = _MISSING

    def unreadable(e: OSError) -> None:
        # os.walk skips what it cannot list; so does load_manifests, which would then swap in
        # a table without that folder's Ingresses. Recorded here, refused by the reloader. A
        # folder that vanished meanwhile is a deletion, seen through its files.
        if not isinstance(e, FileNotFoundError) and e.filename is not None:
            out[os.fspath(e.filename)] = (_UNREADABLE, e.errno or 0)

    for p in paths:
        if not os.path.isdir(p):
            add(str(Path(p)))
            continue
        for f in manifest_files(p, unreadable):
            add(f)
    return out


class _Staged(NamedTuple):
    """What ``Reloader._build`` read, to be swapped in once the ConfigMap's TLS contexts are
    built (``Reloader._new_tls``)."""

    cfg: Any
    res: Resources | None


def _arriving_dh(store: Any, cfg: Any, res: Resources | None) -> frozenset[str]:
    """The ``ssl-dh-param`` problems that a staged TLS build finds with the resources in use
    (the store's last update) and that ``res``, swapped in next, settles: its Secret comes in
    the same edit as the key. Not warned by that build ("not found" for a Secret that is
    there); the swap's update then says "DH parameters loaded"."""
    last = getattr(store, "_last_args", None)
    if res is None or not last or not getattr(cfg.settings, "ssl_dh_param", ""):
        return frozenset()
    from ._tls import dh_param_problems

    settled = {str(p) for p in dh_param_problems(res, cfg.settings)}
    return frozenset(str(p) for p in dh_param_problems(last[0], cfg.settings)) - settled


def _undo_of(server: Any, router: Any) -> Callable[[], None]:
    """What puts ``server``'s router (its state, its ``load-balance`` and ``service-upstream``
    defaults) and certificate store back as they are now, for a swap that raises half way
    (``Reloader._swap``, under its lock). The router's state serving now is published again
    (no build: nothing there can fail); the store is updated again with its last arguments
    (its contexts are cached by certificate: the ones serving now are reused)."""
    state = getattr(router, "_state", None)
    defaults = (getattr(router, "load_balance", None), getattr(router, "_service_upstream", None))
    store: Any = getattr(server, "cert_store", None)
    last = getattr(store, "_last_args", None)

    def undo() -> None:
        server.router = router
        if state is not None and hasattr(router, "_publish"):   # an ingresslib Router
            with router._lock:
                router.load_balance, router._service_upstream = defaults
                # Built from the state that failed: the next update builds afresh.
                router._wiring = router._objects = None
                router._publish(state)
        if last is not None and getattr(store, "_last_args", None) is not last:
            try:
                store.update(*last)
            except Exception:  # noqa: BLE001 - the reload's own error is the one raised
                _log.exception("putting the certificates in use back failed")

    return undo


#: The errors (``strerror``) of a file that could not be read which go away by themselves:
#: the loaders report them as a ``ValidationError`` ("Invalid value: Too many open files"),
#: retried as any other transient failure (``Reloader``'s backoff), unlike a bad manifest.
_TRANSIENT = frozenset(os.strerror(n) for n in (
    errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EIO, errno.ENOBUFS,
    errno.EINTR))

#: ``Reloader``'s retry of a failed reload: the first after 1 s, then twice as long each
#: time, at most 60 s (ingress-nginx requeues a failed sync: ``internal/task/queue.go``).
RETRY_FIRST = 1.0
RETRY_MAX = 60.0


def _next_delay(delay: float) -> float:
    """The retry delay after a failure that came ``delay`` after the last (0: a first try)."""
    return RETRY_FIRST if delay <= 0 else min(delay * 2, RETRY_MAX)


def _transient(e: BaseException) -> bool:
    """Whether a reload that failed with ``e`` may succeed unchanged later: anything but a
    ``ValidationError`` (EMFILE building contexts, a MemoryError, a bug that depends on
    timing), or one of a file that could not be read for a reason that passes (``_TRANSIENT``).
    A manifest or ConfigMap that is invalid waits for its next edit."""
    if not isinstance(e, ValidationError):
        return True
    return any(not err.field and err.detail in _TRANSIENT for err in e.errors)


class SnapshotRetry:
    """``serve --kubernetes``: a cluster snapshot whose swap failed for a reason that may pass
    (``_transient``) is delivered again after a backoff (``RETRY_FIRST`` doubled by each
    failure, at most ``RETRY_MAX``; a success starts again), the way ingress-nginx requeues a
    failed sync: ``ClusterWatcher.redeliver`` (its latest snapshot, only when it has
    delivered nothing since the failure)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self._timer: asyncio.TimerHandle | None = None
        #: Retries failing the way the last one did are not logged in full.
        self._failures = OncePerKind()

    def failed(self, e: BaseException, watcher: Callable[[], ClusterWatcher]
               ) -> tuple[bool, str]:
        """After a failed swap: (whether to log it in full, the log's words for its retry).
        ``watcher``: gives the ``ClusterWatcher`` (made after the callback)."""
        self._cancel()
        first = self._failures.first(e)
        if not _transient(e):
            self.delay = 0.0
            return first, ""
        self.delay = _next_delay(self.delay)
        w = watcher()
        generation = w.delivered_generation

        def again() -> None:
            self._timer = None
            w.redeliver(generation)

        self._timer = asyncio.get_running_loop().call_later(self.delay, again)
        return first, f"; trying again in {self.delay:g} s"

    def succeeded(self) -> None:
        self._cancel()
        self.delay = 0.0
        self._failures.reset()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Reloader:
    """Polls ``paths`` and swaps the server's router (and certificates) when they change."""

    def __init__(
        self, server: Any, paths: Sequence[str], *, ingress_class: str | None,
        controller: str | None, load_balance: str | None = None, interval: float = 1.0,
        on_reload: Callable[[bool, str], None] | None = None, settle: float | None = None,
        config: Any = None, config_path: str | None = None, lock: threading.Lock | None = None,
        snapshot: dict[str, _State] | None = None, swaps: Iterator[int] | None = None,
    ) -> None:
        self.server = server
        #: How long a change must stay still before it is read (default: a quarter of the
        #: interval, at most 0.25 s). A file caught mid-write (a shell's ``>`` truncates first,
        #: an editor may write in pieces) can be valid YAML holding only part of the objects:
        #: loading it would drop the missing routes until the next poll.
        self.settle = min(0.25, interval / 4) if settle is None else settle
        self.paths = list(paths)
        #: The ``--config`` ConfigMap file, polled with the manifests and applied live.
        self.config_path = config_path
        #: Held while the router is rebuilt (shared with the cluster watch's swaps).
        self.lock = lock if lock is not None else threading.Lock()
        self.ingress_class = ingress_class
        self.controller = controller
        self.load_balance = load_balance
        self.interval = interval
        self.on_reload = on_reload
        #: The files' state when they were last read. ``serve`` passes the state taken *before*
        #: its first load, so an edit landing while it starts up is not mistaken for the
        #: state already loaded (and never applied until the next edit).
        self.snapshot = snapshot if snapshot is not None else _snapshot(self._watched())
        #: Unknown/duplicate field warnings already logged (``serve`` shares its start-up set).
        self.logged_fields: set[str] = set()
        #: The table's diagnostics and the router's warnings already logged (``serve``'s).
        self.logged_notes: set[str] = _LoggedNotes()
        #: Successful and failed reloads, for tests and metrics.
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None
        #: The Resources of the last successful reload.
        self.last_resources: Resources | None = None
        #: The Ingresses its table serves (oldest first), as the router's build found them.
        self.last_served: list[Any] | None = None
        #: The ConfigMap settings, part of the configuration's digest.
        self.config = config
        #: ``_table_notes`` of the last successful reload (worked out in the worker thread).
        self.last_notes: dict[str, str] = {}
        #: ``config_digest`` of the last successful reload (computed in the worker thread).
        self.last_digest: str | None = None
        #: The ConfigMap settings the router was last built with, set under ``lock`` with the
        #: swap (``config`` follows on the loop thread, a moment later): what a cluster swap
        #: running meanwhile must put in its digest.
        self.built_config = config
        #: Numbers the swaps made under ``lock`` (shared with the cluster watch): a report of an
        #: older swap that comes late must not overwrite a newer one's (``last_swap``).
        self.swaps = swaps if swaps is not None else itertools.count(1)
        self.last_swap = 0
        self._config_error: Exception | None = None
        #: The manifests' error of a reload that applied a ConfigMap edit without them.
        self._manifests_error: Exception | None = None
        #: Set by ``request_reload``: the next poll runs now and reads the files.
        self._wake = asyncio.Event()
        self._force = False
        #: A reload that failed for a reason that may pass (``_transient``: EMFILE, a
        #: MemoryError, a bug) is tried again, the files unchanged, at ``_retry_at`` (the
        #: loop's clock; None: nothing to retry), ``retry_delay`` seconds after it failed:
        #: ``RETRY_FIRST`` doubled by each failure, at most ``RETRY_MAX``; a success or a
        #: change of the files (a new first try) starts again from ``RETRY_FIRST``.
        self.retry_delay = 0.0
        self._retry_at: float | None = None
        #: Retries failing the way the last one did are not logged in full.
        self._failures = OncePerKind()

    def _watched(self) -> list[str]:
        return self.paths + ([self.config_path] if self.config_path else [])

    def _build(self) -> tuple[list[Any], Resources, Any] | _Staged:
        """``_load`` then ``_swap`` (a worker thread). A changed ConfigMap with a certificate
        store is only loaded (``_Staged``): ``check`` builds its ``ssl-*`` contexts first, then
        swaps (``_swap``), so that a build that fails leaves everything as it was."""
        cfg, res = self._load()
        if cfg is not None and cfg != self.config \
                and getattr(self.server, "cert_store", None) is not None:
            return _Staged(cfg, res)
        return self._swap(cfg, res)

    def _load(self) -> tuple[Any, Resources | None]:
        """The ConfigMap (None: none) and the manifests (None: ``--kubernetes``, the cluster's)
        read and checked, nothing swapped yet (a worker thread)."""
        # Runs in a worker thread: parsing, validation and the table build are all done here,
        # away from the loop that is proxying. ``Router.update`` builds the new state aside and
        # swaps it in with one assignment (balancer state and canary counters carry over); a
        # request routes on the state it read first, so in-flight requests finish on the old
        # table. A ValidationError of the manifests is raised before anything is swapped
        # (unless a valid ConfigMap edit goes in with the last good ones): SEMANTICS §11, "an
        # invalid update keeps the last good table".
        from ._config import load_config
        from ._load import load_manifests

        # The ConfigMap and the manifests are separate inputs: an invalid ConfigMap keeps the
        # settings in use but does not hold back valid manifest edits (ingress-nginx also goes
        # on syncing Ingresses whatever its ConfigMap holds). Its error is reported by check().
        self._config_error = self._manifests_error = None
        cfg = self.config
        if self.config_path:
            try:
                cfg = load_config(self.config_path)
            except ValidationError as e:
                self._config_error = e
        res = None
        if self.paths:
            try:
                res = load_manifests(*self.paths)
            except ValidationError as e:
                # The other way round too: invalid manifests keep the last good table but do
                # not hold back a valid ConfigMap edit, which goes in with the manifests
                # serving (as with --kubernetes below). Reported by check().
                if (cfg is None or cfg == self.config
                        or not hasattr(self.server.router, "resources")):
                    raise
                self._manifests_error = e
        return cfg, res

    def _swap(self, cfg: Any, res: Resources | None) -> tuple[list[Any], Resources, Any]:
        """The router (its defaults from ``cfg``, its table from ``res``) and the certificates
        swapped in under ``lock`` (a worker thread)."""
        with self.lock:
            router = self.server.router
            if res is None:
                # --kubernetes: only the ConfigMap is read here; the cluster gives the resources.
                res = router.resources
            # All or nothing: a step that raises once the router was swapped (the
            # certificates' update, the notes, the digest: EMFILE, MemoryError, a bug) puts the
            # router, its defaults and the certificates back, and nothing of this reload's own
            # state (built_config, the notes, the digest, the settings) has changed yet.
            undo = _undo_of(self.server, router)
            try:
                served, notes, digest = self._swap_router(router, cfg, res)
            except BaseException:
                undo()
                raise
            self.built_config = cfg
            swap = next(self.swaps)
        if cfg is not None:
            self.load_balance = cfg.load_balance
        self.last_notes = notes
        self.last_digest = digest
        self.last_swap = swap
        return served, res, cfg

    def _swap_router(self, router: Any, cfg: Any, res: Resources
                     ) -> tuple[list[Any], dict[str, str], str]:
        """``_swap``'s steps under ``lock``: the router and the certificates swapped in, then
        the table's notes and the configuration's digest worked out (before ``_swap`` records
        anything: a step that raises is undone there)."""
        if (cfg is not None and cfg != self.config
                and hasattr(router, "_set_load_balance")):  # an ingresslib Router
            # ingress-nginx's ``load-balance`` is the router's default balancer: a new
            # value takes effect with this build (balancers are keyed by their spec); a
            # build that fails keeps the default serving.
            load_balance = cfg.load_balance or "round_robin"
            if getattr(router, "service_upstream", cfg.service_upstream) \
                    != cfg.service_upstream:
                # service-upstream, the default of Ingresses without the annotation
                # (_router.py): both defaults set, then one full build with ``res``
                # (a build that fails keeps both previous defaults serving).
                old_load_balance = router.load_balance
                router.load_balance = load_balance
                try:
                    router._set_service_upstream(cfg.service_upstream, res)
                except BaseException:
                    router.load_balance = old_load_balance
                    raise
            else:
                router._set_load_balance(load_balance, res)
        elif hasattr(router, "update"):
            router.update(res)
        else:  # pragma: no cover - a user-supplied router without update()
            self.server.router = build_router(
                res, ingress_class=self.ingress_class, controller=self.controller,
                load_balance=cfg.load_balance if cfg is not None else self.load_balance,
                service_upstream=cfg.service_upstream if cfg is not None else False)
        _log_route_warnings(self.server)
        # The router just worked out which Ingresses it serves; reuse that (TLS needs it).
        served = _served_by(self.server.router, res, self.ingress_class, self.controller)
        store = self.server.cert_store
        if store is not None:
            # Under the lock, with the router: certificates of another snapshot (a cluster
            # update swapped in meanwhile) must not overwrite these, nor these them.
            # Builds SSLContexts for new certificates only (unchanged ones are reused).
            store.update(res, served)
        notes = _table_notes(_notes_of(self.server.router), res, self.paths)
        return served, notes, config_digest(res, served, cfg)

    async def check(self, *, force: bool = False) -> bool | None:
        """One poll: None when nothing changed, else whether the reload succeeded. ``force``
        (SIGHUP) reads the files now, changed or not."""
        loop = asyncio.get_running_loop()
        watched = self._watched()
        snap = await loop.run_in_executor(None, _snapshot, watched)
        due = self._retry_at is not None and loop.time() >= self._retry_at
        if snap == self.snapshot and not force and not due:
            return None
        if snap != self.snapshot or force:
            if self.settle > 0 and not force:
                await asyncio.sleep(self.settle)
                if await loop.run_in_executor(None, _snapshot, watched) != snap:
                    return None  # still being written: look again at the next poll
            # A change (or SIGHUP): a first try, its failure logged in full.
            self.retry_delay = 0.0
            self._failures.reset()
        self._retry_at = None
        self.snapshot = snap
        try:
            # A folder the snapshot could not list is not refused here on its own: the load
            # refuses it too (``_load._walk``), with every other error of the files besides.
            built = await loop.run_in_executor(None, self._build)
            if isinstance(built, _Staged):
                if not await self._new_tls(built.cfg, built.res):
                    return False
                built = await self._swap_staged(built)
            served, res, cfg = built
        except ValidationError as e:
            # Every error: the ConfigMap's too when both are invalid (it was left out).
            both = (e,) if self._config_error is None else (self._config_error, e)
            message = "\n".join(str(x) for x in both)
            self.failures += 1
            self.last_error = message
            again = self._retry(loop, *both)
            if self._failures.first(message):
                _log.error("reload failed; keeping the last good configuration%s:\n%s",
                           again, _invalid_text(*both))
            if self.on_reload:
                self.on_reload(False, message)
            return False
        except Exception as e:  # a bug must not kill the server: keep serving the old table
            self.failures += 1
            self.last_error = repr(e)
            again = self._retry(loop, e)
            if self._failures.first(repr(e)):
                _log.exception("reload failed; keeping the last good configuration%s", again)
            else:
                _log.debug("reload failed again: %r%s", e, again)
            if self.on_reload:
                self.on_reload(False, repr(e))
            return False
        if cfg is not None and cfg != self.config:
            # On the loop thread: the proxy reads its settings there, so a request never sees
            # half of the old settings and half of the new.
            self.server.settings = cfg.settings
            # Each warning once, as the manifests' (fresh_lines): an edit of another key does
            # not log the unsupported keys already reported again.
            old = set(self.config.warnings) if self.config is not None else set()
            for w in cfg.warnings:
                if w not in old:
                    _log.warning("%s", w)
            _log.info("configuration %s applied", self.config_path)
            self.config = cfg
        self.reloads += 1
        self.last_error = None
        if self._config_error is None and self._manifests_error is None:
            self.retry_delay = 0.0
            self._failures.reset()
        self.last_resources = res
        self.last_served = served
        for line in fresh_lines(res.warnings, self.logged_fields):
            _log.warning("%s", line)
        _log_fresh_notes(self.last_notes, self.logged_notes, self.last_swap)
        _log.info("reloaded: %d ingress(es), %d service(s)", len(res.ingresses), len(res.services))
        if self.on_reload:
            self.on_reload(True, "")
        err = self._config_error
        if err is not None:
            self.failures += 1
            self.last_error = str(err)
            self._retry(loop, err)
            if self._failures.first(str(err)):
                _log.error("ConfigMap %s rejected; keeping the settings in use "
                           "(reload failed; keeping the last good configuration):\n%s",
                           self.config_path, err)
            if self.on_reload:
                self.on_reload(False, str(err))
            return False
        err = self._manifests_error
        if err is not None:
            self.failures += 1
            self.last_error = str(err)
            self._retry(loop, err)
            if self._failures.first(str(err)):
                _log.error("reload failed; keeping the last good configuration (the ConfigMap "
                           "%s applied to it):\n%s", self.config_path, _invalid_text(err))
            if self.on_reload:
                self.on_reload(False, str(err))
            return False
        return True

    def _retry(self, loop: asyncio.AbstractEventLoop, *errors: BaseException) -> str:
        """After a failed reload: the retry scheduled when one of ``errors`` may pass by
        itself (``_transient``; else none: an invalid file waits for its next edit). Returns
        the log's words for it ("" when none)."""
        if not any(_transient(e) for e in errors):
            self.retry_delay, self._retry_at = 0.0, None
            return ""
        self.retry_delay = _next_delay(self.retry_delay)
        self._retry_at = loop.time() + self.retry_delay
        return f"; trying again in {self.retry_delay:g} s"

    async def _swap_staged(self, staged: _Staged) -> tuple[list[Any], Resources, Any]:
        """``_swap`` (a worker thread) once ``_new_tls`` put the new contexts in. All or
        nothing: a swap that raises (the router's build) gives the settings still serving their
        contexts back, then raises on (reported by ``check``)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._swap, staged.cfg, staged.res)
        except Exception:
            from ._tls_reconfigure import configure_tls_off_loop

            with contextlib.suppress(Exception):   # (logged there)
                await configure_tls_off_loop(self.server.cert_store, self.server.settings)
            raise

    async def _new_tls(self, cfg: Any, res: Resources | None = None) -> bool:
        """The ``ssl-*`` keys' contexts of a changed ConfigMap, built in a worker thread and
        swapped in on the loop in one step (the listener answers with the old ones meanwhile;
        the settings' own configure_tls then finds them in use), BEFORE anything else of the
        reload is swapped in. False: the build failed (logged there), a failed reload that
        leaves everything as it was, as ``nginx -t`` failing leaves ingress-nginx's
        configuration: the settings, the router (its ``load-balance`` / ``service-upstream``
        defaults and table), ``built_config`` and the contexts; a later reload applies it
        all."""
        from ._tls_reconfigure import configure_tls_off_loop

        quiet = frozenset[str]()
        if res is not None and cfg.settings.ssl_dh_param:
            quiet = await asyncio.get_running_loop().run_in_executor(
                None, _arriving_dh, self.server.cert_store, cfg, res)
        loop = asyncio.get_running_loop()
        again = self.retry_delay > 0   # (a retry: no change since the last failure)
        try:
            # (A retry's failure is logged here, once per kind; a first try's there.)
            await configure_tls_off_loop(self.server.cert_store, cfg.settings, quiet,
                                         log_failure=not again)
        except Exception as e:  # noqa: BLE001 - logged there, with its traceback
            self.failures += 1
            self.last_error = repr(e)
            retry = self._retry(loop, e)
            first = self._failures.first(repr(e))
            if first:   # (a first try's traceback: logged there)
                _log.error("reload failed; keeping the last good configuration%s", retry,
                           exc_info=e if again else None)
            else:
                _log.debug("reload failed again: %r%s", e, retry)
            if self.on_reload:
                self.on_reload(False, repr(e))
            return False
        return True

    def request_reload(self) -> None:
        """Read the files at once, changed or not (``serve``'s SIGHUP, nginx's reload signal)."""
        self._force = True
        self._wake.set()

    async def run(self) -> None:
        """Poll every ``interval`` seconds (0: only when ``request_reload`` asks), until
        cancelled. A poll that fails (a folder removed while it is walked, a bug) is logged,
        once while it keeps failing the same way, and polling goes on: an exception must not
        end the task, which would stop every later reload without a word."""
        logged: str | None = None
        loop = asyncio.get_running_loop()
        while True:
            timeout = self.interval if self.interval > 0 else None
            if self._retry_at is not None:   # (a failed reload's retry: _retry)
                left = max(0.0, self._retry_at - loop.time())
                timeout = left if timeout is None else min(timeout, left)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            force, self._force = self._force, False
            try:
                await (self.check(force=True) if force else self.check())
            except Exception as e:  # noqa: BLE001 - see above
                if repr(e) != logged:
                    _log.error("polling the files failed; trying again: %r", e,
                               exc_info=True)
                    logged = repr(e)
            else:
                logged = None
