"""``ingresslib serve``: manifests on disk -> a running proxy that follows the files.

SEMANTICS §11: "Reloads (file changes, API watch) build a new table off the hot path and swap it
atomically: requests in flight finish on the old one, nothing is dropped, an invalid update keeps
the last good table and reports why."

The files are polled (mtime and size, about once a second: no inotify dependency, and it works
for ConfigMap volume mounts, whose symlink swap an inotify watch on the file misses). A change
loads and builds the new Router and TLS contexts in a worker thread, then swaps one attribute on
the event loop thread. The ``--config`` ConfigMap file is polled the same way (with
``--kubernetes`` too) and applied live, as ingress-nginx applies edits of its ConfigMap; an
invalid edit keeps the settings serving and logs why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ._errors import ValidationError
from ._models import IngressClassSpec, IngressSpec, ObjectMeta
from ._resources import Resources

__all__ = ["serve_main", "Reloader", "build_router"]

_log = logging.getLogger("ingresslib.serve")

_SUFFIXES = (".yaml", ".yml", ".json")


#: A namespace name (``--namespace``): an RFC 1123 label, the API server's
#: ValidateNamespaceName.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)


# --- building ---------------------------------------------------------------------------------


def build_router(
    res: Resources, *, ingress_class: str | None, controller: str | None,
    load_balance: str | None = None, seed: int | None = None,
) -> Any:
    """A new Router for ``res`` (``load_balance`` from the ConfigMap, default round-robin)."""
    from ._router import Router

    return Router(res, ingress_class=ingress_class, controller=controller, seed=seed,
                  load_balance=load_balance or "round_robin")


def _served(res: Resources, ingress_class: str | None, controller: str | None) -> list[Any]:
    from ._table import served_ingresses

    return served_ingresses(res, ingress_class, controller)[0]


def config_digest(res: Resources, served: Sequence[Any], config: Any = None) -> str:
    """The ``config_hash`` metric's value: a SHA-256 of what the routes are built from - the
    served Ingresses, the IngressClasses, the Services, the TLS Secrets and the ConfigMap
    settings - and not of the endpoints, which change without a reload, as in ingress-nginx
    (its hash leaves ``Endpoints`` out: ``Backend.HashInclude``). Equal configurations give
    equal digests in every process, so replicas can be compared.

    The digest depends on the set of objects, not on how they were listed, as the table does:
    a ``ResourceStore`` snapshot (key order) and the same manifests read from files (file order)
    give the same digest, so switching sources is no reload. So each kind is hashed in key order
    with one object per key (the later definition, as ``RouteTable`` uses it), maps with sorted
    keys (the API server sorts them, a file need not), and without what a table never reads:
    ``resourceVersion`` and ``uid`` (a status update bumps the first), and the creation
    timestamps, which count only through the order of the served Ingresses (oldest first,
    ``_table._age_key``), and that order is hashed. ingress-nginx compares the configuration
    built from the objects, not the objects (controller.go, syncIngress: "if
    n.runningConfig.Equal(pcfg) { ... No configuration change detected, skipping backend
    reload").

    Costs about 0.15 s for 10,000 rules (a little more than repr() of the objects): call it
    off the event loop."""
    import hashlib

    from ._table import _age_key

    ingresses = [_canon(i) for i in sorted(served, key=_age_key)]
    classes = _by_key(res.ingress_classes, cluster_scoped=True)
    text = repr((ingresses, classes, _by_key(res.services), _by_key(res.secrets), config))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _by_key(objs: Sequence[Any], *, cluster_scoped: bool = False) -> list[Any]:
    """One canonical object per key (the last definition), in key order."""
    last = {(("" if cluster_scoped else o.metadata.namespace), o.metadata.name): o for o in objs}
    return [_canon(last[k]) for k in sorted(last)]


#: Models whose repr is already canonical: no map, ``ObjectMeta`` or ``datetime`` anywhere inside
#: (tests/test_store_leftovers.py checks their field types). The bulk of a configuration
#: (Ingress specs) is hashed through repr: twice as fast as walking it field by field.
_REPR_CANONICAL = frozenset({IngressSpec, IngressClassSpec})

#: Field names of each model class, looked up once.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _canon(value: Any) -> Any:
    """A model as nested tuples of plain values, for hashing: maps with sorted keys, and
    ``ObjectMeta`` without ``resource_version``, ``uid`` and ``creation_timestamp``."""
    t = type(value)
    if t in _REPR_CANONICAL:
        return repr(value)
    if t is ObjectMeta:
        return ("ObjectMeta", value.namespace, value.name, tuple(sorted(value.annotations.items())),
                tuple(sorted(value.labels.items())))
    if t is tuple:
        return tuple(_canon(v) for v in value)
    if t is MappingProxyType or t is dict:
        return tuple(sorted(value.items()))
    if is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES.get(t)
        if names is None:
            names = _FIELD_NAMES[t] = tuple(f.name for f in fields(value))
        return (t.__name__, *(_canon(getattr(value, n)) for n in names))
    return value


def _snapshot(paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of every manifest file under ``paths`` (missing ones too, so
    a deletion is a change)."""
    out: dict[str, tuple[int, int]] = {}
    for p in paths:
        path = Path(p)
        files = [path]
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in _SUFFIXES)
        for f in files:
            try:
                st = f.stat()
                out[str(f)] = (st.st_mtime_ns, st.st_size)
            except OSError:
                out[str(f)] = (-1, -1)
    return out


class Reloader:
    """Polls ``paths`` and swaps the server's router (and certificates) when they change."""

    def __init__(
        self, server: Any, paths: Sequence[str], *, ingress_class: str | None,
        controller: str | None, load_balance: str | None = None, interval: float = 1.0,
        on_reload: Callable[[bool, str], None] | None = None, settle: float | None = None,
        config: Any = None, config_path: str | None = None, lock: threading.Lock | None = None,
        snapshot: dict[str, tuple[int, int]] | None = None,
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
        #: Successful and failed reloads, for tests and metrics.
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None
        #: The Resources of the last successful reload.
        self.last_resources: Resources | None = None
        #: The ConfigMap settings, part of the configuration's digest.
        self.config = config
        #: ``config_digest`` of the last successful reload (computed in the worker thread).
        self.last_digest: str | None = None
        self._config_error: Exception | None = None

    def _watched(self) -> list[str]:
        return self.paths + ([self.config_path] if self.config_path else [])

    def _build(self) -> tuple[list[Any], Resources, Any]:
        # Runs in a worker thread: parsing, validation and the table build are all done here,
        # away from the loop that is proxying. ``Router.update`` builds the new state aside and
        # swaps it in with one assignment (balancer state and canary counters carry over); a
        # request routes on the state it read first, so in-flight requests finish on the old
        # table. A ValidationError (of the manifests or of the ConfigMap) is raised before
        # anything is swapped: SEMANTICS §11, "an invalid update keeps the last good table".
        from ._config import load_config
        from ._load import load_manifests

        # The ConfigMap and the manifests are separate inputs: an invalid ConfigMap keeps the
        # settings in use but does not hold back valid manifest edits (ingress-nginx also goes
        # on syncing Ingresses whatever its ConfigMap holds). Its error is reported by check().
        self._config_error = None
        cfg = self.config
        if self.config_path:
            try:
                cfg = load_config(self.config_path)
            except ValidationError as e:
                self._config_error = e
        res = load_manifests(*self.paths) if self.paths else None
        with self.lock:
            router = self.server.router
            if res is None:
                # --kubernetes: only the ConfigMap is read here; the cluster gives the resources.
                res = router.resources
            old_lb = getattr(router, "load_balance", None)
            if cfg is not None and cfg != self.config and old_lb is not None:
                # ingress-nginx's ``load-balance`` is the router's default balancer: a new
                # value takes effect with this build (balancers are keyed by their spec).
                router.load_balance = cfg.load_balance or "round_robin"
            try:
                if hasattr(router, "update"):
                    router.update(res)
                else:  # pragma: no cover - a user-supplied router without update()
                    self.server.router = build_router(
                        res, ingress_class=self.ingress_class, controller=self.controller,
                        load_balance=cfg.load_balance if cfg is not None else self.load_balance)
            except BaseException:
                if old_lb is not None:
                    router.load_balance = old_lb
                raise
            table = getattr(self.server.router, "table", None)
            # The router just worked out which Ingresses it serves; reuse that (TLS needs it).
            served = list(table.served) if table is not None else _served(
                res, self.ingress_class, self.controller)
            store = self.server.cert_store
            if store is not None:
                # Under the lock, with the router: certificates of another snapshot (a cluster
                # update swapped in meanwhile) must not overwrite these, nor these them.
                # Builds SSLContexts for new certificates only (unchanged ones are reused).
                store.update(res, served)
        if cfg is not None:
            self.load_balance = cfg.load_balance
        self.last_digest = config_digest(res, served, cfg)
        return served, res, cfg

    async def check(self) -> bool | None:
        """One poll: None when nothing changed, else whether the reload succeeded."""
        loop = asyncio.get_running_loop()
        watched = self._watched()
        snap = await loop.run_in_executor(None, _snapshot, watched)
        if snap == self.snapshot:
            return None
        if self.settle > 0:
            await asyncio.sleep(self.settle)
            if await loop.run_in_executor(None, _snapshot, watched) != snap:
                return None  # still being written: look again at the next poll
        self.snapshot = snap
        try:
            served, res, cfg = await loop.run_in_executor(None, self._build)
        except ValidationError as e:
            self.failures += 1
            self.last_error = str(e)
            _log.error("reload failed; keeping the last good configuration:\n%s", e)
            if self.on_reload:
                self.on_reload(False, str(e))
            return False
        except Exception as e:  # a bug must not kill the server: keep serving the old table
            self.failures += 1
            self.last_error = repr(e)
            _log.exception("reload failed; keeping the last good configuration")
            if self.on_reload:
                self.on_reload(False, repr(e))
            return False
        if cfg is not None and cfg != self.config:
            # On the loop thread: the proxy reads its settings there, so a request never sees
            # half of the old settings and half of the new.
            self.server.settings = cfg.settings
            for w in cfg.warnings:
                _log.warning("%s", w)
            _log.info("configuration %s applied", self.config_path)
            self.config = cfg
        self.reloads += 1
        self.last_error = None
        self.last_resources = res
        _log.info("reloaded: %d ingress(es), %d service(s)", len(res.ingresses), len(res.services))
        if self.on_reload:
            self.on_reload(True, "")
        err = self._config_error
        if err is not None:
            self.failures += 1
            self.last_error = str(err)
            _log.error("ConfigMap %s rejected; keeping the settings in use "
                       "(reload failed; keeping the last good configuration):\n%s",
                       self.config_path, err)
            if self.on_reload:
                self.on_reload(False, str(err))
            return False
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()


# --- output ------------------------------------------------------------------------------------


_HANDLERS: list[tuple[logging.Logger, logging.Handler]] = []


def _quiet_bad_sni() -> None:
    """Turn the traceback CPython prints for a ClientHello whose server name is not ASCII into
    a debug log line. The ``ssl`` module decodes the SNI before our callback runs and reports a
    failure through ``sys.unraisablehook`` ("Exception ignored in: b'...'", a traceback on
    stderr per handshake): any client could flood the log with them. The handshake fails with
    an alert either way (nginx refuses such names too). Other unraisable errors go to the hook
    in place before. Process-wide, so only ``serve`` installs it (a library leaves hooks alone).
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if (isinstance(exc, UnicodeDecodeError) and exc.encoding == "ascii"
                and isinstance(unraisable.object, bytes)):
            _log.debug("TLS handshake refused: server name %r is not ASCII", unraisable.object)
            return
        previous(unraisable)

    sys.unraisablehook = hook


def _setup_logging(access_log: str, level: str) -> None:
    # Only the CLI configures output (library etiquette); calling it again (tests call main()
    # several times in one process) replaces what it added before.
    from ._accesslog import configure_access_log

    for lg, hd in _HANDLERS:
        lg.removeHandler(hd)
    _HANDLERS.clear()
    root = logging.getLogger("ingresslib")
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(h)
    _HANDLERS.append((root, h))
    if access_log == "off":
        logging.getLogger("ingresslib.access").disabled = True
    else:
        configure_access_log(sys.stdout, "json" if access_log == "json" else "text")


# --- main ------------------------------------------------------------------------------------


def _record_sink(access: str, metrics: Any) -> Callable[[Any], None] | None:
    """One callable per finished request: the access log and/or the metrics."""
    from ._accesslog import AccessLog

    log = AccessLog() if access != "off" else None
    if log is not None and metrics is not None:
        observe = metrics.observe

        def both(rec: Any) -> None:
            observe(rec)
            log(rec)

        return both
    if metrics is not None:
        return metrics.observe  # type: ignore[no-any-return]
    return log


async def _serve(args: argparse.Namespace, res: Resources, cfg: Any,
                 kube_config: Any = None,
                 files_state: dict[str, tuple[int, int]] | None = None) -> int:
    from ._tls import CertificateStore
    from .proxy._server import ProxyServer, parse_listen

    kube_client: Any = None
    if kube_config is not None:
        # Made before listening: a configuration that cannot be used (a CA file that does not
        # exist...) is the user's to fix, not something to retry (exit 2, nothing served).
        from lightkube import AsyncClient

        try:
            kube_client = AsyncClient(config=kube_config)
        except Exception as e:  # noqa: BLE001 - lightkube raises OSError, ConfigError, ...
            print(f"ingresslib serve: --kubernetes: cannot use the cluster configuration: {e}",
                  file=sys.stderr)
            return 2

    listen = parse_listen(args.listen, 8080)
    tls_listen = parse_listen(args.tls_listen, 8443) if args.tls_listen else None
    metrics_listen = parse_listen(args.metrics_listen, 10254) if args.metrics_listen else None
    router = build_router(res, ingress_class=args.ingress_class, controller=args.controller,
                          load_balance=cfg.load_balance)
    served = _served(res, args.ingress_class, args.controller)
    store = None
    if tls_listen is not None:
        store = CertificateStore()
        store.update(res, served)
    from ._metrics import Metrics, MetricsServer, certificates_of, hosts_of

    metrics: Metrics | None = None
    metrics_server: MetricsServer | None = None
    mport = 0
    if metrics_listen is not None:
        metrics = Metrics()
        metrics.set_certificates(certificates_of(res, served))
        # Requests for hosts no served rule names are not counted per host (ingress-nginx).
        metrics.set_hosts(hosts_of(res, served))
    access = getattr(args, "access_log", "text")
    server = ProxyServer(
        router, cfg.settings, cert_store=store,
        max_connections=getattr(args, "max_connections", 10000),
        on_record=_record_sink(access, metrics),
    )
    # /healthz is ready once the first table is loaded: at once from files, after the first
    # complete list of every kind with --kubernetes.
    synced = asyncio.Event()
    if not getattr(args, "kubernetes", False):
        synced.set()
    try:
        await server.start(listen, tls_listen)
        if metrics is not None and metrics_listen is not None:
            metrics_server = MetricsServer(metrics, metrics_listen[0], metrics_listen[1],
                                           healthy=lambda: synced.is_set() and not server.draining)
            mport = await metrics_server.start()
    except OSError as e:
        print(f"ingresslib serve: cannot listen: {e}", file=sys.stderr)
        await server.shutdown(0)
        return 1
    for url in server.urls:
        print(f"listening on {url}", file=sys.stderr, flush=True)
    if metrics_server is not None:
        assert metrics_listen is not None
        h = metrics_listen[0]
        print(f"metrics on http://{'[' + h + ']' if ':' in h else h}:{mport}/metrics",
              file=sys.stderr, flush=True)

    # The digest of the configuration serving, and whether the last attempt failed: an update
    # that leaves the digest as it was (an endpoint change from the cluster, a file touched
    # without a change) is not a reload, as ingress-nginx only counts nginx reloads.
    serving_digest: str | None = None
    last_failed = False

    def on_reload(ok: bool, message: str, res: Resources | None = None,
                  digest: str | None = None) -> None:
        nonlocal serving_digest, last_failed
        if metrics is None:
            return
        if not ok:
            last_failed = True
            metrics.on_reload(False, message)
            return
        res = res if res is not None else reloader.last_resources if reloader else None
        if digest is None and reloader is not None:
            digest = reloader.last_digest
        if digest is None or digest != serving_digest or last_failed:
            metrics.reload_succeeded(time.time(), digest)
            serving_digest, last_failed = digest, False
        if res is not None:
            served_now = _served(res, args.ingress_class, args.controller)
            metrics.set_certificates(certificates_of(res, served_now))
            metrics.set_hosts(hosts_of(res, served_now))

    reloader: Reloader | None = None
    if not getattr(args, "kubernetes", False):
        # The configuration loaded at start is the first one serving (ingress-nginx's first
        # sync is its first reload); with --kubernetes that is the first complete snapshot.
        on_reload(True, "", res, await asyncio.get_running_loop().run_in_executor(
            None, config_digest, res, served, cfg))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows / non-main thread
            pass
    kube = getattr(args, "kubernetes", False)
    interval = getattr(args, "reload_interval", 1.0)
    #: One swap at a time: a ConfigMap edit rebuilds the router from its current resources, which
    #: must not undo a cluster snapshot swapped in meanwhile.
    swap_lock = threading.Lock()
    if not kube or args.config:
        # With --kubernetes, only the ConfigMap file is polled (no manifest paths).
        reloader = Reloader(server, [] if kube else list(args.files),
                            ingress_class=args.ingress_class, controller=args.controller,
                            load_balance=cfg.load_balance, interval=interval,
                            on_reload=on_reload, config=cfg, config_path=args.config,
                            lock=swap_lock, snapshot=files_state)
    tasks: list[asyncio.Task[Any]] = []
    if reloader is not None and reloader.interval > 0:
        tasks.append(loop.create_task(reloader.run()))
    failed: list[str] = []
    if kube:
        tasks.append(loop.create_task(_watch(
            args, server, store, metrics, stop, synced, on_reload=on_reload,
            config=(lambda: reloader.config) if reloader is not None else (lambda: cfg),
            kube_client=kube_client, lock=swap_lock, failed=failed)))
    try:
        await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        if tasks:
            # Let the watcher close its connections (bounded). asyncio.wait raises nothing for
            # the tasks' own outcomes, so a second Ctrl-C still cancels us.
            done, _ = await asyncio.wait(tasks, timeout=5)
            for t in done:
                if not t.cancelled():
                    t.exception()  # retrieved: nothing it raised while stopping matters
        _log.info("stopping: finishing in-flight requests")
        await server.shutdown(timeout=getattr(args, "shutdown_timeout", 10.0))
        if metrics_server is not None:
            await metrics_server.close()
        if kube_client is not None:
            with contextlib.suppress(Exception):
                await kube_client.close()
    # _cli's exit codes: 1 is a runtime failure (the watch could not go on).
    return 1 if failed else 0


async def _watch(args: argparse.Namespace, server: Any, store: Any, metrics: Any,
                 stop: asyncio.Event, synced: asyncio.Event, *, on_reload: Callable[..., None],
                 config: Callable[[], Any] = lambda: None, kube_client: Any = None,
                 lock: threading.Lock | None = None, failed: list[str] | None = None) -> None:
    """``serve --kubernetes``: the cluster is the source (SEMANTICS §11). Each debounced snapshot
    is built off the loop and swapped in; an invalid object keeps its last valid version (the
    store's rule), so one bad edit never takes the table down."""
    from ._kube import WATCHED_KINDS, ClusterWatcher

    loop = asyncio.get_running_loop()
    swap = lock if lock is not None else threading.Lock()

    def apply(res: Resources) -> str:
        with swap:  # router and certificates of one snapshot, never mixed with a reload's
            server.router.update(res)
            table = getattr(server.router, "table", None)
            served = list(table.served) if table is not None else _served(
                res, args.ingress_class, args.controller)
            if store is not None:
                store.update(res, served)
        return config_digest(res, served, config())

    async def on_snapshot(res: Resources) -> None:
        try:
            digest = await loop.run_in_executor(None, apply, res)
        except Exception as e:  # keep serving the last good table
            _log.exception("cluster update failed; keeping the last good configuration")
            on_reload(False, repr(e))
            raise
        _log.info("cluster update: %d ingress(es), %d service(s)", len(res.ingresses), len(res.services))
        on_reload(True, "", res, digest)
        synced.set()

    # Secrets are read for HTTPS only (certificates by SNI). Without --tls-listen they are not
    # watched at all: no Secret is ever fetched (least privilege: the Role may leave Secrets
    # out), and a denied Secret list cannot hold back the first table.
    kinds = WATCHED_KINDS if store is not None else tuple(
        k for k in WATCHED_KINDS if k.kind != "Secret")
    watcher = ClusterWatcher(on_snapshot, namespace=args.namespace, client=kube_client,
                             kubeconfig=args.kubeconfig, metrics=metrics, kinds=kinds)
    try:
        await watcher.run(stop)
    except Exception as e:  # noqa: BLE001 - the watcher retries everything it can retry
        _log.error("cannot watch the cluster: %s", e, exc_info=True)
        if failed is not None:
            failed.append(str(e))
        stop.set()


def serve_main(args: argparse.Namespace) -> int:
    """``ingresslib serve``; returns the exit code (0, 1 runtime failure, 2 invalid input)."""
    from ._config import ServerConfig, load_config
    from ._load import load_manifests

    kube = getattr(args, "kubernetes", False)
    if not args.files and not kube:
        print("ingresslib serve: at least one -f PATH (or --kubernetes) is required", file=sys.stderr)
        return 2
    if args.files and kube:
        print("ingresslib serve: -f and --kubernetes are exclusive", file=sys.stderr)
        return 2
    for flag, value in (("--namespace", getattr(args, "namespace", None)),
                        ("--kubeconfig", getattr(args, "kubeconfig", None))):
        if value is not None and not kube:
            print(f"ingresslib serve: {flag} needs --kubernetes", file=sys.stderr)
            return 2
    ns = getattr(args, "namespace", None)
    if ns is not None and not _DNS1123_LABEL.fullmatch(ns):
        # A namespace name is an RFC 1123 label (the API server's ValidateNamespaceName); any
        # other value would only ever be answered 404, and nothing would be served.
        print(f"ingresslib serve: --namespace {ns!r}: a namespace is a lower-case RFC 1123 "
              "label (a-z, 0-9, '-', at most 63 characters)", file=sys.stderr)
        return 2
    from .proxy._server import parse_listen

    for flag, value, default in (("--listen", args.listen, 8080),
                                 ("--tls-listen", args.tls_listen, 8443),
                                 ("--metrics-listen", args.metrics_listen, 10254)):
        try:
            if value is not None:
                parse_listen(value, default)
        except ValueError as e:
            print(f"ingresslib serve: {flag} {value!r}: expected HOST:PORT ({e})", file=sys.stderr)
            return 2
    kube_config: Any = None
    if kube:
        # Read the cluster configuration now: a missing or broken kubeconfig (or no in-cluster
        # ServiceAccount) is an input error to report before listening (exit 2), not a watch
        # that fails in the background while the process serves nothing and exits 0.
        try:
            from ._kube import load_kube_config

            kube_config = load_kube_config(args.kubeconfig)
        except ImportError as e:
            print(f"ingresslib serve: --kubernetes needs lightkube "
                  f"(pip install 'ingresslib[k8s]'): {e}", file=sys.stderr)
            return 2
        except Exception as e:  # noqa: BLE001 - lightkube's ConfigError, OSError, YAML errors
            where = f"--kubeconfig {args.kubeconfig}" if args.kubeconfig else "--kubernetes"
            print(f"ingresslib serve: {where}: cannot load the cluster configuration: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
            return 2
    # Before reading anything: what the reloader compares with (see Reloader.snapshot).
    files_state = _snapshot(([] if kube else list(args.files))
                            + ([args.config] if args.config else []))
    cfg = ServerConfig()
    try:
        if args.config:
            cfg = load_config(args.config)
        # With --kubernetes the first table comes from the watch (empty until it has synced).
        res = Resources() if kube else load_manifests(*args.files)
    except ValidationError as e:
        print(str(e), file=sys.stderr)
        return 2
    _setup_logging(getattr(args, "access_log", "text"), getattr(args, "log_level", "info"))
    if args.tls_listen:
        _quiet_bad_sni()
    for w in cfg.warnings:
        _log.warning("%s", w)
    try:
        return asyncio.run(_serve(args, res, cfg, kube_config, files_state))
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C
        return 0
    except ValidationError as e:  # Router build found problems load_manifests did not
        print(str(e), file=sys.stderr)
        return 2
