"""``ingresslib serve``: manifests on disk -> a running proxy that follows the files.

SEMANTICS §11: "Reloads (file changes, API watch) build a new table off the hot path and swap it
atomically: requests in flight finish on the old one, nothing is dropped, an invalid update keeps
the last good table and reports why."

This module reads the command line, loads the first table, opens the listeners and the metrics
server, sets up the output, follows the cluster with ``--kubernetes`` (``_watch``) and handles
the signals. SIGHUP reads the files at once (one that comes while ``serve`` starts is kept until
it can be acted on). SIGTERM, SIGINT and SIGQUIT (nginx's graceful stop, ``nginx -s quit``)
stop accepting and let requests in flight finish for up to ``--shutdown-timeout`` seconds
(else the ConfigMap's ``worker-shutdown-timeout``, else 10: ``_serve_reload.shutdown_timeout``)
(exit 0); a second SIGINT aborts what is left at once.

Its parts, one job each: ``_serve_reload`` (the files polled and swapped in: ``Reloader``),
``_serve_build`` (the router and the Ingresses it serves), ``_serve_digest`` (``config_digest``,
the ``config_hash`` metric), ``_serve_notes`` (what is logged of a load and of a table) and
``_serve_listen`` (the listener addresses).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ValidationError
from ._fields import fresh_lines
from ._resources import Resources
# A name imported here is looked up here by this module's code only: patching
# ``_serve.config_digest`` (or ``build_router``) reaches the first table's and the cluster
# watch's calls, not ``Reloader``'s, which are ``_serve_reload``'s names (``config_digest``,
# ``_snapshot``, ``build_router``): patch those there.
from ._serve_build import _served, _served_by, build_router
from ._serve_digest import config_digest
# (re-exported: tests and benchmarks/bench_reload.py read them as _serve's)
from ._serve_digest import _canon as _canon
from ._serve_digest import _DigestCache as _DigestCache
from ._serve_digest import _DIGESTS as _DIGESTS
from ._serve_digest import _encode as _encode
from ._serve_digest import _make_encoder as _make_encoder
from ._serve_digest import _SKIPPED_FIELDS as _SKIPPED_FIELDS
from ._serve_jobs import BoundedExecutor
from ._serve_listen import _failed_listener, _host_error, _listener_conflict, _listening_urls
from ._serve_listen import _say
from ._serve_listen import _bind_key as _bind_key  # (re-exported: tests read _serve._bind_key)
from ._serve_notes import (
    _invalid_text,
    _log_fresh_notes,
    _log_route_warnings,
    _LoggedNotes,
    _notes_of,
    _table_notes,
)
from ._serve_notes import MAX_NOTES_LOGGED as MAX_NOTES_LOGGED  # (re-exported: tests read it)
from ._serve_limits import ServeLimits
from ._serve_reload import (Reloader, SnapshotRetry, _snapshot, _State, _undo_of,
                            shutdown_timeout)
# The URL of a socket, one function for serve's lines and ProxyServer.urls (serve runs the
# proxy server anyway: importing it here costs ``serve`` nothing).
from .proxy._server import _socket_urls
from .proxy._server import _url as _url  # (re-exported: tests read _serve._url)

if TYPE_CHECKING:  # (imported when serve makes one: --metrics-listen)
    from ._metrics import Metrics

__all__ = ["serve_main", "Reloader", "build_router"]

_log = logging.getLogger("ingresslib.serve")


#: A namespace name (``--namespace``): an RFC 1123 label, the API server's
#: ValidateNamespaceName.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)


# --- output ------------------------------------------------------------------------------------


_HANDLERS: list[tuple[logging.Logger, logging.Handler]] = []


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
    if access_log == "off" or sys.stdout is None:
        # No stdout at all (``sys.stdout`` None: started with descriptor 1 closed, ``>&-``): no
        # access log. A handler given None writes to stderr: the access log's lines went among
        # the error log's.
        logging.getLogger("ingresslib.access").disabled = True
    else:
        configure_access_log(sys.stdout, "json" if access_log == "json" else "text")


# --- main ------------------------------------------------------------------------------------


def _record_sink(access: str, metrics: Any, log: Any = None
                 ) -> Callable[[Any], None] | None:
    """One callable per finished request: the access log (``log``, else a new ``AccessLog``)
    and/or the metrics."""
    from ._accesslog import AccessLog

    if access == "off":
        log = None
    elif log is None:
        log = AccessLog()
    if log is not None and metrics is not None:
        observe = metrics.observe

        def both(rec: Any) -> None:
            # The access log whatever the metrics do: an entry lost to a metrics bug (a
            # label value prometheus-client refuses) is a request no one can trace.
            try:
                observe(rec)
            finally:
                log(rec)

        return both
    if metrics is not None:
        return metrics.observe  # type: ignore[no-any-return]
    return log  # type: ignore[no-any-return]


def _metrics_from(args: argparse.Namespace) -> Metrics:
    """``--metrics-listen``'s :class:`Metrics`, shaped by the controller's metrics flags
    (``_cli._add_metrics_args``); a list flag not given (None) is ingress-nginx's default, as
    is any flag a Namespace made elsewhere lacks."""
    from ._metrics import LENGTH_BUCKETS, SIZE_BUCKETS, TIME_BUCKETS, Metrics

    def given(name: str, default: Sequence[float]) -> Sequence[float]:
        value: Sequence[float] | None = getattr(args, name, None)
        return default if value is None else value

    return Metrics(
        per_host=getattr(args, "metrics_per_host", True),
        per_undefined_host=getattr(args, "metrics_per_undefined_host", False),
        report_status_classes=getattr(args, "report_status_classes", False),
        exclude_socket_metrics=getattr(args, "exclude_socket_metrics", None) or (),
        time_buckets=given("time_buckets", TIME_BUCKETS),
        length_buckets=given("length_buckets", LENGTH_BUCKETS),
        size_buckets=given("size_buckets", SIZE_BUCKETS))


def _default_server(server: Any, host: str) -> bool:
    """Whether ingress-nginx's catch-all server answers an unrouted request for ``host``: no
    Ingress has a rule for it (nor a server-alias), or no Host was sent (the proxy's
    ``_unrouted_options``, cached per table and host)."""
    return not host or server.proxy._unrouted_options(host) is None


def _dh_param_named(settings: Any, unread: list[str] | None = None) -> None:
    """``serve --kubernetes`` with HTTPS: the ConfigMap's ``ssl-dh-param`` names a Secret the
    watch of named Secrets reads (``auth_refs`` in ``_watch``); a change of it has that watch
    work its Secrets out again now (``_kube_auth.refs_changed``), not at the next Ingress
    change. ``unread`` (``--no-auth-secrets``: no such watch): the value last said unread,
    each new one is said once (the store only finds no such Secret)."""
    dh = getattr(settings, "ssl_dh_param", "")
    if unread is not None:
        if dh and dh != unread[0]:
            _log.warning("ConfigMap: ssl-dh-param %s: --no-auth-secrets reads no Opaque "
                         "Secret: no DH parameters, the DHE cipher suites are not offered", dh)
        unread[0] = dh
        return
    from ._kube_auth import refs_changed

    refs_changed(dh)


def _default_secret_ref(args: argparse.Namespace) -> tuple[str, str] | None:
    """``(namespace, name)`` of ``--default-ssl-certificate`` (checked before serving), or
    None without it."""
    from ._tls import parse_secret_ref

    value = getattr(args, "default_ssl_certificate", None)
    return parse_secret_ref(value) if value is not None else None


def _kube_source(args: argparse.Namespace) -> str:
    """Where the cluster configuration came from, for an error's prefix: ``--kubeconfig PATH``
    when given (the file to fix), else ``--kubernetes`` (in-cluster, $KUBECONFIG, ~/.kube)."""
    path = getattr(args, "kubeconfig", None)
    return f"--kubeconfig {path}" if path else "--kubernetes"


async def _serve(args: argparse.Namespace, res: Resources, cfg: Any,
                 kube_config: Any = None,
                 files_state: dict[str, _State] | None = None,
                 early_hup: _EarlyHangup | None = None) -> int:
    from ._tls import CertificateStore
    from .proxy._server import ProxyServer, parse_listen

    # Worker threads a stop does not wait for beyond a second (``_serve_jobs``): asyncio.run's
    # own executor held the exit until a reload being built ended, however long that took.
    asyncio.get_running_loop().set_default_executor(BoundedExecutor())
    # max-worker-open-files / max-worker-connections (ingresslib._serve_limits).
    limits = ServeLimits(args)
    limits.open_files(cfg)
    kube_client: Any = None
    if kube_config is not None:
        # Made before listening: a configuration that cannot be used (a CA file that does not
        # exist...) is the user's to fix, not something to retry (exit 2, nothing served).
        from ._kube import cluster_client

        try:
            # Not lightkube's AsyncClient as is: exec plugins of client-go's v1 run, a plugin
            # answer without a token said in words, lists given the API server's 60 s.
            kube_client = cluster_client(kube_config)
        except Exception as e:  # noqa: BLE001 - lightkube raises OSError, ConfigError, ...
            _say(f"ingresslib serve: {_kube_source(args)}: cannot use the cluster "
                 f"configuration: {e}")
            return 2

    listen = parse_listen(args.listen, 8080)
    tls_listen = parse_listen(args.tls_listen, 8443) if args.tls_listen else None
    metrics_listen = parse_listen(args.metrics_listen, 10254) if args.metrics_listen else None
    router = build_router(res, ingress_class=args.ingress_class, controller=args.controller,
                          load_balance=cfg.load_balance, service_upstream=cfg.service_upstream)
    served = _served_by(router, res, args.ingress_class, args.controller)
    store = None
    if tls_listen is not None:
        store = CertificateStore(
            default_secret=getattr(args, "default_ssl_certificate", None),
            default_source="--default-ssl-certificate")
        # The ConfigMap's ssl-* settings before the first load (ProxyServer gives them too,
        # then a no-op): each certificate loaded once, not again with them.
        store.configure_tls(cfg.settings)
        store.update(res, served)
    from ._metrics import MetricsServer, certificates_of, hosts_of

    metrics: Metrics | None = None
    metrics_server: MetricsServer | None = None
    mport = 0
    if metrics_listen is not None:
        metrics = _metrics_from(args)
        # The store's own list when there is one: a broken update's last good certificate
        # is still served, so it keeps its series.
        metrics.set_certificates(store.certificates(default=True) if store is not None
                                 else certificates_of(res, served))
        # Requests for hosts no served rule names are not counted per host (ingress-nginx).
        metrics.set_hosts(hosts_of(res, served))
    # (no stdout: no access log, as ``_setup_logging`` says)
    access = getattr(args, "access_log", "text") if sys.stdout is not None else "off"
    access_log: Any = None
    if access != "off":
        from ._accesslog import AccessLog

        # The ConfigMap's log-format-upstream, log-format-escape-* and
        # enable-access-log-for-default-backend (again after each change: ``on_reload``).
        access_log = AccessLog(default_server=lambda host: _default_server(server, host))
        access_log.configure(cfg.settings)
    server = ProxyServer(
        router, cfg.settings, cert_store=store,
        max_connections=limits.bound(cfg),
        on_record=_record_sink(access, metrics, access_log),
        ssl_passthrough=bool(getattr(args, "enable_ssl_passthrough", False)),
    )
    # /healthz is ready once the first table is loaded: at once from files, after the first
    # complete list of every kind with --kubernetes.
    synced = asyncio.Event()
    if not getattr(args, "kubernetes", False):
        synced.set()
    # SIGTERM and SIGINT stop gracefully from the moment a client can connect: the handlers go
    # in before the listener opens (and before "listening on" is printed), not after the first
    # digest, which runs while requests are already served. A signal in between used to meet
    # the default action: SIGTERM killed the process with requests in flight, SIGINT raised
    # KeyboardInterrupt and cut them. Now it sets ``stop`` and the drain below runs.
    stop = asyncio.Event()
    #: A second Ctrl-C once stopping has started: the drain is cut short (``_drain``).
    again = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP, nginx's reload signal, re-reads the files and the ConfigMap now. Left to its
    # default action it killed the process on the spot, requests in flight included (`kill
    # -HUP`, out of habit, or the terminal of a foreground `serve` closing).
    reloader: Reloader | None = None
    #: Files to read (manifests, or the --config file with --kubernetes): a SIGHUP that comes
    #: before the reloader exists (while the listeners open and the first digest runs) is kept
    #: for it, not dropped as if nothing were watched. One sent before the loop ran too.
    reads_files = not getattr(args, "kubernetes", False) or bool(args.config)
    hup_pending = early_hup is not None and early_hup.received

    def on_hup() -> None:
        nonlocal hup_pending
        if stop.is_set():
            # Stopping: the reloader is cancelled (or never ran), and a SIGHUP reads nothing.
            # Said so, not "reading the files now" (or "once started", a start that is not
            # going to go on); still caught (its default action would end the process and
            # cut the drain).
            _log.info("SIGHUP while stopping: nothing is read again")
        elif reloader is not None:
            _log.info("SIGHUP: reading the files now")
            reloader.request_reload()
        elif reads_files:
            _log.info("SIGHUP: reading the files once started")
            hup_pending = True
        else:
            _log.info("SIGHUP: nothing to read (the cluster is watched); ignored")

    #: The signals that set ``stop``, in order: one that comes while the listeners open (before
    #: "listening on") stops the start as one before the loop ran (exit 130 or 143).
    stopped_by: list[int] = []

    def stop_on(sig: int) -> Callable[[], None]:
        def handler() -> None:
            if sig == signal.SIGINT and stop.is_set():
                # A second Ctrl-C, whenever it comes once stopping started: before the drain
                # began too (the first digest, the listeners opening, the watch tasks ending),
                # where it was taken for the first one again and the drain then went on for the
                # whole --shutdown-timeout.
                again.set()
            stopped_by.append(sig)
            stop.set()
        return handler

    handlers: list[tuple[int, Callable[[], None]]] = [(signal.SIGINT, stop_on(signal.SIGINT)),
                                                      (signal.SIGTERM, stop_on(signal.SIGTERM))]
    if hasattr(signal, "SIGQUIT"):  # not on Windows
        # nginx's graceful stop (``nginx -s quit``; its TERM and INT are the fast one, which
        # serve, as ingress-nginx's controller on SIGTERM, makes graceful too). Left to its
        # default action it killed the process with requests in flight and dumped core.
        handlers.append((signal.SIGQUIT, stop_on(signal.SIGQUIT)))
    if hasattr(signal, "SIGHUP"):  # not on Windows
        handlers.append((signal.SIGHUP, on_hup))
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows / non-main thread
            pass
    async def open_listeners() -> None:
        nonlocal metrics_server, mport
        await server.start(listen, tls_listen)
        if metrics is not None and metrics_listen is not None:
            # Unready from the moment stopping starts (``stop``), before the watch tasks are
            # cancelled (bounded, but not instant) and the drain begins: as ingress-nginx,
            # whose Stop() first sets isShuttingDown, which its healthz Check() answers with
            # "the ingress controller is shutting down".
            metrics_server = MetricsServer(
                metrics, metrics_listen[0], metrics_listen[1],
                healthy=lambda: synced.is_set() and not stop.is_set() and not server.draining)
            mport = await metrics_server.start()

    # A task of its own, shielded: a cancellation of serve's task during the start (an
    # embedding's TaskGroup or timeout, asyncio.run cancelling what is left) that landed on the
    # ``sleep(0)`` asyncio's ``create_server`` takes once its listener serves lost the
    # ``asyncio.Server`` itself (it never reached ``ProxyServer.start``), and its socket stayed
    # open until garbage collection.
    opening = loop.create_task(open_listeners())
    try:
        await asyncio.shield(opening)
    except (OSError, ValueError) as e:
        # Which listener: the proxy binds --listen, then --tls-listen, each recorded in
        # ``addresses`` once bound, and the metrics listener comes last. The bare message
        # ("address already in use") did not say which of up to three it was.
        which = _failed_listener(args, len(server.addresses), metrics_server is not None)
        _say(f"ingresslib serve: {which}: cannot listen: {e}")
        try:
            await server.shutdown(0)
        finally:
            await _close_side_servers(metrics_server, kube_client)
        return 1
    except BaseException:
        # Cancelled or interrupted while the listeners opened: the opening is let finish (it
        # ends by itself: a bind or a name lookup), so everything it opened is known, and all
        # of it is closed before the exception goes on. Only OSError and ValueError closed
        # the listeners before; any other exception left those already bound listening.
        await _closed_after(opening, server, lambda: metrics_server, kube_client)
        raise
    if stop.is_set():
        # A Ctrl-C (or SIGTERM) while the listeners opened: nothing was said to listen yet, so
        # it stops the start as one a moment earlier did (exit 130 or 143, serve_main's line),
        # not "listening on" followed by a graceful stop and exit 0. Still a graceful stop: a
        # client that connected meanwhile has its request finished (a second Ctrl-C cuts it).
        await _stop_serving(server, args, again, metrics_server, kube_client, config=cfg)
        if stopped_by[:1] and stopped_by[0] != signal.SIGINT:  # SIGTERM, SIGQUIT
            raise _Terminated(stopped_by[0])
        raise KeyboardInterrupt()
    if early_hup is not None:
        early_hup.serving = True
    for url in _listening_urls(server):
        _say(f"listening on {url}")
    if metrics_server is not None:
        assert metrics_listen is not None
        for url in _socket_urls("http", getattr(metrics_server, "_server", None),
                                (metrics_listen[0], mport)):
            _say(f"metrics on {url}/metrics")
    #: --tcp-services-configmap: ingresslib._serve_tcp (None without the flag).
    tcp_feed: Any = None
    #: --udp-services-configmap: ingresslib._serve_udp (None without the flag).
    udp_feed: Any = None
    for flag in ("tcp_services_configmap", "udp_services_configmap"):
        if not getattr(args, flag, None):
            continue
        from ._serve_tcp import TCPServicesFeed
        from ._serve_udp import UDPServicesFeed

        feed = (TCPServicesFeed if flag[0] == "t" else UDPServicesFeed)(
            getattr(args, flag), listen[0], server.settings,
            reserved=lambda: [a[-1] for a in server.addresses] + [p for p in (
                listen[1], tls_listen and tls_listen[1], metrics_listen and metrics_listen[1],
                mport) if p],
            max_connections=limits.bound(cfg),
            drain_timeout=shutdown_timeout(args, cfg))
        if flag[0] == "t":
            tcp_feed = feed
        else:
            udp_feed = feed

    # The digest of the configuration serving, and whether the last attempt failed: an update
    # that leaves the digest as it was (an endpoint change from the cluster, a file touched
    # without a change) is not a reload, as ingress-nginx only counts nginx reloads.
    serving_digest: str | None = None
    last_failed = False
    #: The swap the metrics describe. A ConfigMap reload and a cluster snapshot build in two
    #: worker threads: the later swap can report first (its digest was quicker), and the older
    #: report must not then put back a configuration that no longer serves.
    reported_swap = 0
    #: --no-auth-secrets: the ssl-dh-param said unread (``_dh_param_named``).
    dh_unread = [""]

    def on_reload(ok: bool, message: str, res: Resources | None = None,
                  digest: str | None = None, served: Sequence[Any] | None = None,
                  swap: int | None = None) -> None:
        # ``res`` and ``served``: the snapshot swapped in and the Ingresses its table serves
        # (the router's build worked them out; a file reload leaves them on the reloader).
        nonlocal serving_digest, last_failed, reported_swap
        #: The ConfigMap serving now (the last a reload applied).
        config_now = reloader.config if reloader is not None else cfg
        if ok:   # (max-worker-open-files / -connections, as the ConfigMap is now)
            limits.reload(config_now, server, (tcp_feed, udp_feed))
        if ok and access_log is not None:
            access_log.configure(server.settings)  # (the same settings: nothing to do)
        if ok and store is not None and getattr(args, "kubernetes", False):
            _dh_param_named(server.settings, dh_unread if getattr(
                args, "no_auth_secrets", False) else None)
        if ok and (tcp_feed is not None or udp_feed is not None):
            tcp_res = res if res is not None else getattr(reloader, "last_resources", None)
            if udp_feed is not None:
                udp_feed.services.responses = getattr(config_now, "proxy_stream_responses", 1)
            if tcp_feed is not None:   # (worker-shutdown-timeout; UDP sessions do not drain)
                tcp_feed.services.drain_timeout = shutdown_timeout(args, config_now)
            for feed in (tcp_feed, udp_feed):
                if tcp_res is not None and feed is not None:
                    feed.apply(tcp_res, server.settings)
        if metrics is None:
            return
        if not ok:
            last_failed = True
            metrics.on_reload(False, message)
            return
        if swap is None and reloader is not None:
            swap = reloader.last_swap
        if swap is not None:
            if swap < reported_swap:
                return  # a newer swap has reported already
            reported_swap = swap
        if res is None and reloader is not None:
            res, served = reloader.last_resources, reloader.last_served
        if digest is None and reloader is not None:
            digest = reloader.last_digest
        if digest is None or digest != serving_digest or last_failed:
            metrics.reload_succeeded(time.time(), digest)
            serving_digest, last_failed = digest, False
        if res is not None:
            if served is None:  # pragma: no cover - every caller passes the table's own
                served = _served(res, args.ingress_class, args.controller)
            metrics.set_certificates(store.certificates(default=True) if store is not None
                                     else certificates_of(res, served))
            metrics.set_hosts(hosts_of(res, served))
            # The series of Ingresses no longer served go (ingress-nginx's RemoveMetrics of
            # the removed Ingresses on each sync): series would pile up as Ingresses come
            # and go, one per preview environment.
            metrics.set_ingresses(served)

    if not getattr(args, "kubernetes", False):
        # The configuration loaded at start is the first one serving (ingress-nginx's first
        # sync is its first reload); with --kubernetes that is the first complete snapshot.
        on_reload(True, "", res, await asyncio.get_running_loop().run_in_executor(
            None, config_digest, res, served, cfg), served)

    kube = getattr(args, "kubernetes", False)
    interval = getattr(args, "reload_interval", 1.0)
    #: One swap at a time: a ConfigMap edit rebuilds the router from its current resources, which
    #: must not undo a cluster snapshot swapped in meanwhile.
    swap_lock = threading.Lock()
    #: Numbers the swaps, under ``swap_lock`` (``on_reload`` keeps the newest).
    swaps = itertools.count(1)
    #: Unknown/duplicate field warnings already logged: each definition's once.
    logged_fields: set[str] = set()
    for line in fresh_lines(res.warnings, logged_fields):
        _log.warning("%s", line)
    #: The table's diagnostics and the router's warnings already logged (``_table_notes``).
    logged_notes: set[str] = _LoggedNotes()
    if not kube:  # with --kubernetes: once the first snapshot is in (``_watch``)
        _log_fresh_notes(await loop.run_in_executor(
            None, _table_notes, _notes_of(router), res, list(args.files)), logged_notes)
    if not kube or args.config:
        # With --kubernetes, only the ConfigMap file is polled (no manifest paths).
        reloader = Reloader(server, [] if kube else list(args.files),
                            ingress_class=args.ingress_class, controller=args.controller,
                            load_balance=cfg.load_balance, interval=interval,
                            on_reload=on_reload, config=cfg, config_path=args.config,
                            lock=swap_lock, snapshot=files_state, swaps=swaps)
        reloader.logged_fields = logged_fields
        reloader.logged_notes = logged_notes
        # ``received`` read again: a SIGHUP could land after ``hup_pending`` was first set
        # and before the loop's handler (and its wakeup fd) took over.
        if hup_pending or (early_hup is not None and early_hup.received):
            reloader.request_reload()
    tasks: list[asyncio.Task[Any]] = []
    if reloader is not None:  # interval 0: no polling, but SIGHUP still reads the files
        tasks.append(loop.create_task(reloader.run()))
    failed: list[str] = []
    if kube:
        tasks.append(loop.create_task(_watch(
            args, server, store, metrics, stop, synced, on_reload=on_reload,
            config=(lambda: reloader.built_config) if reloader is not None else (lambda: cfg),
            kube_client=kube_client, lock=swap_lock, failed=failed, swaps=swaps,
            logged_notes=logged_notes)))
    try:
        await stop.wait()
    finally:
        # TCP services stop listening at once and drain beside the HTTP requests.
        # (worker-shutdown-timeout: the ConfigMap serving, the last a reload applied.)
        config_now = reloader.config if reloader is not None else cfg
        tcp_closing = None if tcp_feed is None else loop.create_task(
            tcp_feed.close(shutdown_timeout(args, config_now)))
        if udp_feed is not None:   # (UDP sessions end with their sockets: nothing to drain)
            await udp_feed.close(0)
        try:
            await _stop_serving(server, args, again, metrics_server, kube_client, tasks,
                                config=config_now)
        finally:
            if tcp_closing is not None:
                if again.is_set():   # a second Ctrl-C: what is left is cut
                    tcp_closing.cancel()
                    await asyncio.gather(tcp_closing, return_exceptions=True)
                    await tcp_feed.close(0)
                else:
                    await tcp_closing
    # _cli's exit codes: 1 is a runtime failure (the watch could not go on).
    return 1 if failed else 0


async def _stop_serving(server: Any, args: argparse.Namespace, again: asyncio.Event,
                        metrics_server: Any, kube_client: Any,
                        tasks: Sequence[asyncio.Task[Any]] = (), config: Any = None) -> None:
    """``serve``'s graceful stop, once ``stop`` is set (serving, or while the listeners
    opened): ``tasks`` (the reloader, the cluster watch) are cancelled, the requests in flight
    finish for up to ``--shutdown-timeout`` seconds (``_drain``; ``again``, a second Ctrl-C,
    cuts it short), then the metrics listener and the cluster client close. (The signal
    handlers ``_serve`` put in know that stopping started: SIGINT sets ``again``, SIGHUP reads
    nothing.)"""
    for t in tasks:
        t.cancel()
    if tasks:
        # Let the watcher close its connections (bounded). asyncio.wait raises nothing for
        # the tasks' own outcomes.
        done, _ = await asyncio.wait(tasks, timeout=5)
        for t in done:
            if not t.cancelled():
                t.exception()  # retrieved: nothing it raised while stopping matters
    _log.info("stopping: finishing in-flight requests")
    try:
        await _drain(server, shutdown_timeout(args, config), again)
    finally:
        await _close_side_servers(metrics_server, kube_client)


async def _closed_after(opening: asyncio.Task[None], server: Any,
                        metrics_server: Callable[[], Any], kube_client: Any) -> None:
    """Waits for ``opening`` (the listeners opening) to end, however often the caller is
    cancelled meanwhile, then closes what it opened: the proxy's listeners (``shutdown(0)``:
    nothing was served yet), the metrics listener and the cluster client. A cancellation
    during the closing does not leave a listener open: each is closed at once, first thing."""
    while not opening.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({opening})
    if not opening.cancelled():
        opening.exception()  # (retrieved: the caller's exception is the one that goes on)
    try:
        await server.shutdown(0)
    finally:
        await _close_side_servers(metrics_server(), kube_client)


async def _close_side_servers(metrics_server: Any, kube_client: Any) -> None:
    """Closes what ``serve`` runs besides the proxy, once the proxy's listeners are shut: the
    metrics listener (None: there is none; one whose start failed closes as nothing) and the
    cluster client (its connection pool: an embedding's process goes on; an error closing it
    is dropped, nothing more is done with it). The client is closed even when closing the
    metrics listener raised. Every way ``_serve`` ends calls it: a listener that cannot open,
    a stop during the start, a stop once serving."""
    try:
        if metrics_server is not None:
            await metrics_server.close()
    finally:
        if kube_client is not None:
            with contextlib.suppress(Exception):
                await kube_client.close()


async def _drain(server: Any, timeout: float, interrupt: asyncio.Event) -> None:
    """``server.shutdown(timeout)``: stop accepting, let in-flight requests finish for up to
    ``timeout`` seconds; ``interrupt`` (a second Ctrl-C) aborts what is left at once."""
    drain = asyncio.ensure_future(server.shutdown(timeout=timeout))
    cut = asyncio.ensure_future(interrupt.wait())
    try:
        await asyncio.wait({drain, cut}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            _log.warning("interrupted again: aborting the requests in flight")
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
            await server.shutdown(timeout=0)
        else:
            drain.result()
    finally:
        cut.cancel()
        drain.cancel()  # only when we are cancelled ourselves: it is done otherwise


async def _watch(args: argparse.Namespace, server: Any, store: Any, metrics: Any,
                 stop: asyncio.Event, synced: asyncio.Event, *, on_reload: Callable[..., None],
                 config: Callable[[], Any] = lambda: None, kube_client: Any = None,
                 lock: threading.Lock | None = None, failed: list[str] | None = None,
                 swaps: Iterator[int] | None = None,
                 logged_notes: set[str] | None = None) -> None:
    """``serve --kubernetes``: the cluster is the source (SEMANTICS §11). Each debounced snapshot
    is built off the loop and swapped in; an invalid object keeps its last valid version (the
    store's rule), so one bad edit never takes the table down."""
    from ._kube import (CONFIG_MAPS, WATCHED_KINDS, ClusterWatcher, auth_secret_refs,
                        names_config_maps, with_auth_secrets, with_default_secret)

    loop = asyncio.get_running_loop()
    swap = lock if lock is not None else threading.Lock()
    numbers = swaps if swaps is not None else itertools.count(1)
    notes = logged_notes if logged_notes is not None else _LoggedNotes()

    def apply(res: Resources) -> tuple[str, list[Any], int, dict[str, str]]:
        with swap:  # router and certificates of one snapshot, never mixed with a reload's
            # All or nothing, as a file reload's swap: a step failing after the router took
            # the snapshot puts the router and the certificates back (the retry brings the
            # snapshot in again), never the new table with the old certificates.
            undo = _undo_of(server, server.router)
            try:
                server.router.update(res)
                _log_route_warnings(server)
                served = _served_by(server.router, res, args.ingress_class, args.controller)
                if store is not None:
                    store.update(res, served)
                # The ConfigMap settings this router has: read with the swap, since a
                # ConfigMap reload may have rebuilt it a moment ago (its ``config`` is set a
                # little later).
                cfg = config()
                notes_of = _notes_of(server.router)
                digest = config_digest(res, served, cfg)
                lines = _table_notes(notes_of, res)
            except BaseException:
                undo()
                raise
            number = next(numbers)
        return digest, served, number, lines

    retry = SnapshotRetry()   # (a swap that failed for a reason that may pass: again later)

    async def on_snapshot(res: Resources) -> None:
        try:
            digest, served, number, lines = await loop.run_in_executor(None, apply, res)
        except Exception as e:  # keep serving the last good table
            full, again = retry.failed(e, lambda: watcher)
            # What serve does about it, in one line; no traceback: the re-raise hands the
            # failure to ClusterWatcher, which counts it and logs its traceback (once per kind
            # of failure, as here), the log every program using the watcher relies on.
            _log.log(logging.ERROR if full else logging.DEBUG, "cluster update failed; keeping "
                     "the last good configuration%s", again)
            on_reload(False, repr(e))
            raise
        retry.succeeded()
        _log.info("cluster update: %d ingress(es), %d service(s)", len(res.ingresses), len(res.services))
        _log_fresh_notes(lines, notes, number)
        on_reload(True, "", res, digest, served, number)
        synced.set()

    # TLS Secrets are read for HTTPS only (certificates by SNI). Without --tls-listen they are
    # not watched at all: no certificate Secret is ever fetched (least privilege: the Role may
    # leave Secrets out), and a denied Secret list cannot hold back the first table; only the
    # ones a served Ingress names (proxy-ssl-secret, auth-tls-secret) come, with the named
    # Secrets below.
    kinds = WATCHED_KINDS if store is not None else tuple(
        k for k in WATCHED_KINDS if k.kind != "Secret")
    if not getattr(args, "no_auth_secrets", False):
        # The Secrets the served Ingresses name (auth-secret, auth-tls-secret,
        # proxy-ssl-secret), as from files: read only once one is named, and only those (every
        # other is dropped on receipt); the Opaque ones, and without the TLS watch the
        # kubernetes.io/tls ones too (``_kube.with_auth_secrets``). Without it
        # (--no-auth-secrets) those routes answer 503, as for a missing Secret.
        kinds = with_auth_secrets(kinds)
    # ConfigMaps (custom-headers, the --config ConfigMap's add-headers / proxy-set-headers):
    # watched only while a served Ingress or the --config ConfigMap names one.
    kinds = (*kinds, CONFIG_MAPS)
    default_ref = _default_secret_ref(args) if store is not None else None
    if default_ref is not None:
        # --default-ssl-certificate's Secret whatever its type (an Opaque one holding
        # tls.crt/tls.key too), by name, --no-auth-secrets or not: ingress-nginx's Secret
        # informer reads every type (``_kube.with_default_secret``), and -f reads it.
        kinds = with_default_secret(kinds, *default_ref)

    def auth_refs(res: Resources) -> frozenset[tuple[str, str]]:
        refs = auth_secret_refs(_served(res, args.ingress_class, args.controller))
        # ssl-dh-param's Secret (``kubectl create secret generic``: Opaque) comes with them:
        # the certificate store reads its dhparam.pem from the snapshot (_tls._dh_params).
        dh = getattr(getattr(config(), "settings", None), "ssl_dh_param", "")
        if dh and store is not None:
            ns, _, name = dh.partition("/")
            refs = refs | {(ns, name)}
        # The default Secret is its own watch's, even when an Ingress names it too.
        return refs - {default_ref} if default_ref is not None else refs

    def wants_config_maps(res: Resources) -> bool:
        settings = getattr(config(), "settings", None)
        if getattr(settings, "add_headers", "") or getattr(settings, "proxy_set_headers", ""):
            return True
        if getattr(args, "tcp_services_configmap", None) \
                or getattr(args, "udp_services_configmap", None):
            return True
        return names_config_maps(_served(res, args.ingress_class, args.controller))

    watcher = ClusterWatcher(on_snapshot, namespace=args.namespace, client=kube_client,
                             kubeconfig=args.kubeconfig, metrics=metrics, kinds=kinds,
                             auth_refs=auth_refs, wants_config_maps=wants_config_maps)
    try:
        await watcher.run(stop)
    except Exception as e:  # noqa: BLE001 - the watcher retries everything it can retry
        _log.error("cannot watch the cluster: %s", e, exc_info=True)
        if failed is not None:
            failed.append(str(e))
        stop.set()


class _Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGQUIT) before ``serve`` listens (``_EarlyHangup``): raised as a Ctrl-C is,
    so the start stops where it is by the same paths; ``serve_main`` exits 128 + the signal's
    number, as a shell reports it (143 for SIGTERM, 131 for SIGQUIT)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = int(signum)


class _EarlyHangup:
    """SIGHUP from the start of ``serve`` until the event loop's own handler takes over.

    Its default action kills the process, and reading a large set of manifests takes a while:
    a ``kill -HUP`` sent after an edit while ``serve`` starts (a sidecar that signals on every
    ConfigMap change) ended it with nothing said. Caught here, it is remembered and the files
    are read again once the reloader runs (with ``--reload-interval 0`` nothing else would).
    Main thread only (``signal.signal``); the handler in place before is put back on exit,
    SIGINT's and SIGTERM's too: asyncio's loop, closing, leaves ``default_int_handler`` and
    SIG_DFL behind, and a program embedding ``serve_main`` lost its own handlers.

    SIGTERM too, while its action is the default one: it stops the start (``_Terminated``);
    SIGQUIT likewise (its default action also dumped core).
    In a container ``serve`` is often PID 1, and the kernel drops a signal PID 1 has no
    handler for: a ``docker stop`` or a pod deletion while the files were read was lost, the
    proxy went on to serve, and the SIGKILL that follows the grace period cut its requests.

    SIGINT is Python's own ``default_int_handler`` for the start, whatever handler was in place
    (unless SIGINT is ignored, as the process was started): a Ctrl-C raises KeyboardInterrupt
    while the files are read, and ``asyncio.run`` then puts in its own handler, which cancels
    the start (exit 130). ``asyncio.run`` does that only if it finds ``default_int_handler``:
    with any other handler in place (an embedding's, or one a library left behind, as
    uvicorn's ``Server.handle_exit`` or an unclosed event loop's), a Ctrl-C while the first
    table was built went to that handler alone, and ``serve`` went on to listen and serve as
    if nothing had been pressed. ``serve`` takes SIGINT once it listens anyway (its graceful
    stop); the handler found is put back on exit."""

    def __init__(self) -> None:
        self.received = False
        #: Set by ``_serve`` once it listens: a KeyboardInterrupt before that is a Ctrl-C
        #: before serving (exit 130), not one while the loop closes.
        self.serving = False
        self._previous: Any = None
        self._installed = False
        #: SIGINT's and SIGTERM's handlers before ``serve`` (None: not set from Python).
        self._others: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received = True

    @staticmethod
    def _on_term(signum: int, frame: Any) -> None:
        raise _Terminated(signum)

    def __enter__(self) -> _EarlyHangup:
        if threading.current_thread() is threading.main_thread():
            stops = (signal.SIGTERM, *((signal.SIGQUIT,) if hasattr(signal, "SIGQUIT") else ()))
            self._others = {s: signal.getsignal(s) for s in (signal.SIGINT, *stops)}
            if self._others[signal.SIGINT] not in (signal.default_int_handler, signal.SIG_IGN):
                signal.signal(signal.SIGINT, signal.default_int_handler)
            for s in stops:
                if self._others[s] is signal.SIG_DFL:  # not an embedder's own
                    signal.signal(s, self._on_term)
            if hasattr(signal, "SIGHUP"):
                self._previous = signal.signal(signal.SIGHUP, self._on_signal)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, before in self._others.items():
            if before is None:
                # Set outside Python (an embedding's C handler): signal.signal cannot put it
                # back, and once replaced (serve's SIGINT for the start, asyncio's loop) it is
                # gone. If it was replaced, Python's own handler for the signal goes back, the
                # one the interpreter installs when it owns the signal: SIGINT's
                # default_int_handler (a Ctrl-C raises KeyboardInterrupt, which the embedding
                # can catch; SIG_DFL would end the process at the next one), SIGTERM's SIG_DFL.
                # Untouched (getsignal still None: a start that ended before the loop), the
                # C handler is still in place and stays.
                if signal.getsignal(sig) is None:
                    continue
                before = (signal.default_int_handler if sig == signal.SIGINT
                          else signal.SIG_DFL)
            if signal.getsignal(sig) is not before:
                signal.signal(sig, before)
        if self._installed:
            # None: the handler before was not set from Python (signal.signal's own word).
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGHUP, previous)


def serve_main(args: argparse.Namespace) -> int:
    """``ingresslib serve``; returns the exit code (0, 1 runtime failure, 2 invalid input,
    130 for a Ctrl-C before it serves, 143 for a SIGTERM before it serves, 131 a SIGQUIT)."""
    with _EarlyHangup() as hup:
        try:
            return _serve_main(args, hup)
        except _Terminated as e:
            _say("ingresslib serve: terminated before serving")
            return 128 + e.signum
        except KeyboardInterrupt:
            # Ctrl-C while the files (or the cluster configuration) are read or the first
            # table is built: nothing serves yet, so nothing to drain; one line, not a
            # traceback from the middle of a parser.
            _say("ingresslib serve: interrupted before serving")
            return 130


def _serve_main(args: argparse.Namespace, hup: _EarlyHangup) -> int:
    from ._config import ServerConfig, load_config
    from ._load import load_manifests

    kube = getattr(args, "kubernetes", False)
    if not args.files and not kube:
        _say("ingresslib serve: at least one -f PATH (or --kubernetes) is required")
        return 2
    if args.files and kube:
        _say("ingresslib serve: -f and --kubernetes are exclusive")
        return 2
    if "-" in (args.files or ()):
        # check and explain read "-f -" once; serve re-reads its files on every change.
        _say("ingresslib serve: -f - (standard input) cannot be watched for changes; "
             "give a file or folder")
        return 2
    for flag, value in (("--namespace", getattr(args, "namespace", None)),
                        ("--kubeconfig", getattr(args, "kubeconfig", None))):
        if value is not None and not kube:
            _say(f"ingresslib serve: {flag} needs --kubernetes")
            return 2
    ns = getattr(args, "namespace", None)
    if ns is not None and not _DNS1123_LABEL.fullmatch(ns):
        # A namespace name is an RFC 1123 label (the API server's ValidateNamespaceName); any
        # other value would only ever be answered 404, and nothing would be served.
        _say(f"ingresslib serve: --namespace {ns!r}: a namespace is a lower-case RFC 1123 "
             "label (a-z, 0-9, '-', at most 63 characters)")
        return 2
    if getattr(args, "enable_ssl_passthrough", False) and not args.tls_listen:
        # As --default-ssl-certificate: without an HTTPS listener no ClientHello is ever read.
        _say("ingresslib serve: --enable-ssl-passthrough needs --tls-listen")
        return 2
    if (getattr(args, "metrics_per_undefined_host", False)
            and not getattr(args, "metrics_per_host", True)):
        # ingress-nginx's flag parser refuses it before anything starts (pkg/flags/flags.go;
        # flags_test.go TestMetricsPerUndefinedHostWithMetricsPerHostFalse): without the host
        # label there is nothing per host to export.
        _say("ingresslib serve: --metrics-per-undefined-host=true needs "
             "--metrics-per-host=true")
        return 2
    default_cert = getattr(args, "default_ssl_certificate", None)
    if default_cert is not None:
        from ._tls import parse_secret_ref

        try:
            cert_ns, _name = parse_secret_ref(default_cert)
        except ValueError as e:
            _say(f"ingresslib serve: --default-ssl-certificate {e}")
            return 2
        if not args.tls_listen:
            # Refused rather than ignored, as --namespace without --kubernetes: without an
            # HTTPS listener nothing would ever serve it, and nothing would say so.
            _say("ingresslib serve: --default-ssl-certificate needs --tls-listen")
            return 2
        if ns is not None and cert_ns != ns:
            # Only --namespace's Secrets are listed: one elsewhere could never be read.
            # ingress-nginx accepts it and falls back to its fake certificate for good
            # (kubernetes/ingress-nginx#9196, documented since #11947); refused here at once.
            _say(f"ingresslib serve: --default-ssl-certificate {default_cert}: outside "
                 f"--namespace {ns}, the only namespace watched; its Secret could never be "
                 "read")
            return 2
    for flag in ("tcp", "udp"):
        ref = getattr(args, f"{flag}_services_configmap", None)
        if kube and ns is not None and ref is not None and ref.partition("/")[0] != ns:
            # As --default-ssl-certificate: only --namespace's ConfigMaps are listed, so it
            # would never be found (ingress-nginx logs "Error getting ConfigMap" on every
            # sync and serves no stream service: kubernetes/ingress-nginx#7159).
            _say(f"ingresslib serve: --{flag}-services-configmap {ref}: outside --namespace "
                 f"{ns}, the only namespace watched; the ConfigMap could never be read")
            return 2
    from .proxy._server import parse_listen

    listeners: list[tuple[str, tuple[str, int]]] = []
    for option, value, default in (("--listen", args.listen, 8080),
                                 ("--tls-listen", args.tls_listen, 8443),
                                 ("--metrics-listen", args.metrics_listen, 10254)):
        if value is None:
            continue
        try:
            where = parse_listen(value, default)
            problem = _host_error(where[0])
            if problem is not None:
                raise ValueError(problem)
        except ValueError as e:
            _say(f"ingresslib serve: {option} {value!r}: {e}")
            return 2
        listeners.append((option, where))
    conflict = _listener_conflict(listeners)
    if conflict is not None:
        _say(f"ingresslib serve: {conflict}")
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
            _say(f"ingresslib serve: --kubernetes: {e}")
            return 2
        except Exception as e:  # noqa: BLE001 - lightkube's ConfigError, OSError, YAML errors
            _say(f"ingresslib serve: {_kube_source(args)}: cannot load the cluster configuration: "
                 f"{type(e).__name__}: {e}")
            return 2
    # Before reading anything: what the reloader compares with (see Reloader.snapshot).
    files_state = _snapshot(([] if kube else list(args.files))
                            + ([args.config] if args.config else []))
    cfg = ServerConfig()
    # With --kubernetes the first table comes from the watch (empty until it has synced).
    res = Resources()
    # Every error at once, of the ConfigMap and of the manifests alike, as `check` reports
    # them: an operator fixing one should not have to restart to learn the next. A folder
    # that cannot be listed is refused by the load itself, among the others.
    invalid: list[ValidationError] = []
    if args.config:
        try:
            cfg = load_config(args.config)
        except ValidationError as e:
            invalid.append(e)
    if not kube:
        try:
            res = load_manifests(*args.files)
        except ValidationError as e:
            invalid.append(e)
    if invalid:
        _say(_invalid_text(*invalid))
        return 2
    _setup_logging(getattr(args, "access_log", "text"), getattr(args, "log_level", "info"))
    for w in cfg.warnings:
        _log.warning("%s", w)
    try:
        return asyncio.run(_serve(args, res, cfg, kube_config, files_state, hup))
    except KeyboardInterrupt:
        if not hup.serving:
            # A Ctrl-C while the table was built, before serve's own SIGINT handler was in:
            # asyncio's cancelled the start-up. Nothing listens: serve_main's exit 130.
            raise
        return 0  # pragma: no cover - a Ctrl-C as the loop closes (its handlers gone)
    except ValidationError as e:  # Router build found problems load_manifests did not
        _say(str(e))
        return 2
