"""Embed ingresslib's asyncio proxy in a program of your own: serve, reload, stop.

    python examples/embedded_proxy.py -f deploy/ [-f more.yaml] [--listen 127.0.0.1:8080]
                                      [--tls-listen 127.0.0.1:8443] [--reload-interval 1]
                                      [--metrics-listen 127.0.0.1:10254]

What ``ingresslib serve`` does, written with the public API only, so you can put your own
code around it (an admin endpoint, your own reload trigger, your own logging):

- the manifests are loaded once and served by an ``ingresslib.proxy.ProxyServer``;
- ``SIGHUP`` reloads them, and so does a change of the files when ``--reload-interval`` is
  given (seconds between two looks at their sizes and times; a change is read once it has
  stayed still for a quarter of that, at most 0.25 s, as ``serve`` does; default 0: SIGHUP
  only): ``router.update(res)`` swaps the whole table at once, so every request sees the old
  table or the new one, and requests in flight (and keep-alive connections) go on untouched.
  Invalid manifests keep the last good table (their errors are printed, the
  ``config_last_reload_successful`` gauge goes to 0);
- with ``--tls-listen``, HTTPS with the certificates of the ``kubernetes.io/tls`` Secrets the
  Ingresses name, chosen by SNI (an ``ingresslib.proxy.CertificateStore``, updated with the
  table: a reload that replaces a Secret serves its new certificate from the next handshake);
  what the store cannot use (a missing Secret, a certificate that does not cover its host) is
  printed as ``tls: ...`` lines, and those hosts get the generated default certificate;
- ``SIGINT`` / ``SIGTERM`` stop it gracefully: no new connections, requests in flight finish
  (10 s at most);
- with ``--metrics-listen``, Prometheus metrics (ingress-nginx's names) and ``/healthz``.

It prints ``listening on http://HOST:PORT`` (then ``https://...``) on stderr once it accepts
connections (``--listen 127.0.0.1:0`` picks a free port), then one line per reload. Manifests
whose endpoints name cluster addresses (``10.0.0.1``) must be rewritten to addresses you can
reach first. Unix only (``loop.add_signal_handler``). To follow a cluster instead of files,
feed ``router.update`` from ``ingresslib.ClusterWatcher`` (docs/cluster.md, "Building blocks
for your own program").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

import ingresslib
from ingresslib.proxy import CertificateStore, ProxyServer


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stamp(paths: list[str]) -> list[tuple[str, int, int]]:
    """Every file under ``paths`` with its modification time and size (what a change moves)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(top, name) for top, _, names in os.walk(path) for name in names]
        else:
            files.append(path)
    stamp = []
    for name in sorted(files):
        try:
            st = os.stat(name)
        except OSError:            # gone (or a broken link): a change too
            stamp.append((name, -1, -1))
        else:
            stamp.append((name, st.st_mtime_ns, st.st_size))
    return stamp


def _hosts(router: ingresslib.Router) -> set[str]:
    """The rule hosts of the Ingresses served and their ``server-alias`` names: the hosts the
    metrics count per host (ingress-nginx's ``SetHosts`` takes each server's aliases too). A
    canary Ingress's hosts are not among them (ingress-nginx makes no server of its own for
    it)."""
    return {rule.host for ing in router.table.served
            if ing.metadata.annotations.get("nginx.ingress.kubernetes.io/canary") != "true"
            for rule in ing.spec.rules if rule.host} | set(router.table.aliases)


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("-f", "--filename", action="append", required=True, dest="paths",
                    help="a manifest file or folder (repeat for more)")
    ap.add_argument("--listen", type=_address, default=("127.0.0.1", 8080))
    ap.add_argument("--tls-listen", type=_address, default=None)
    ap.add_argument("--reload-interval", type=float, default=0.0, metavar="SECONDS",
                    help="look for changed files this often (default 0: only on SIGHUP)")
    ap.add_argument("--metrics-listen", type=_address, default=None)
    args = ap.parse_args(argv)

    try:
        res = ingresslib.load_manifests(*args.paths)
    except ingresslib.ValidationError as err:
        _say(str(err))
        return 2
    router = ingresslib.Router(res)
    # The signals are ours before "listening on" is printed: a SIGTERM or SIGHUP sent as soon
    # as the server is up would otherwise meet Python's default (the process killed, requests
    # in flight cut) while the metrics listener is still being set up.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: asyncio.Queue[None] = asyncio.Queue()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)
    metrics = ingresslib.Metrics()
    store = None
    if args.tls_listen is not None:
        store = CertificateStore()                    # generates the default certificate
        for problem in store.update(res, router.table.served):
            _say(f"tls: {problem}")
        metrics.set_certificates(store.certificates(default=True))
    metrics.set_hosts(_hosts(router))

    async def reload_forever() -> None:
        while True:
            await reloads.get()
            try:
                # Parsing and validating thousands of objects takes a while: off the loop,
                # so requests keep being served meanwhile.
                new = await asyncio.to_thread(ingresslib.load_manifests, *args.paths)
            except ingresslib.ValidationError as err:
                metrics.reload_failed(time.time())
                _say(f"reload rejected, the last good table keeps serving:\n{err}")
                continue
            router.update(new)                        # one atomic swap
            if store is not None:                     # the certificates of the new table
                for problem in store.update(new, router.table.served):
                    _say(f"tls: {problem}")
                metrics.set_certificates(store.certificates(default=True))
            metrics.set_ingresses(router.table.served)  # drop series of removed Ingresses
            metrics.set_hosts(_hosts(router))
            metrics.reload_succeeded(time.time())
            _say(f"reloaded: {len(router.table.served)} Ingress(es) served")

    async def poll_forever(interval: float) -> None:
        seen = await asyncio.to_thread(_stamp, args.paths)
        while True:
            await asyncio.sleep(interval)
            now = await asyncio.to_thread(_stamp, args.paths)
            if now == seen:
                continue
            # Read a change once it has stayed still a moment: a file caught half-written
            # would be rejected (or, worse, valid and incomplete).
            while True:
                await asyncio.sleep(min(interval / 4, 0.25))
                later = await asyncio.to_thread(_stamp, args.paths)
                if later == now:
                    break
                now = later
            seen = now
            reloads.put_nowait(None)

    server = ProxyServer(router, cert_store=store, on_record=metrics.observe)
    await server.start(args.listen, tls_listen=args.tls_listen)
    async with server:                                # shutdown() on the way out, however it
                                                      # ends (at once after serve_until's)
        for url in server.urls:
            _say(f"listening on {url}")
        mserver = None
        if args.metrics_listen is not None:
            mhost, mport = args.metrics_listen
            mserver = ingresslib.MetricsServer(metrics, mhost, mport,
                                               healthy=lambda: not server.draining)
            _say(f"metrics on http://{mhost}:{await mserver.start()}/metrics")
        metrics.reload_succeeded(time.time())
        tasks = [asyncio.create_task(reload_forever())]
        if args.reload_interval > 0:
            tasks.append(asyncio.create_task(poll_forever(args.reload_interval)))
        try:
            await server.serve_until(stop)            # graceful shutdown once `stop` is set
        finally:
            for task in tasks:
                task.cancel()
            if mserver is not None:
                await mserver.close()
    _say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
