"""Embed ingresslib's asyncio proxy in a program of your own: serve, reload, stop.

    python examples/embedded_proxy.py -f deploy/ [-f more.yaml] [--listen 127.0.0.1:8080]
                                      [--metrics-listen 127.0.0.1:10254]

What ``ingresslib serve`` does, written with the public API only, so you can put your own
code around it (an admin endpoint, your own reload trigger, your own logging):

- the manifests are loaded once and served by an ``ingresslib.proxy.ProxyServer``;
- ``SIGHUP`` reloads them: ``router.update(res)`` swaps the whole table at once, so every
  request sees the old table or the new one, and requests in flight (and keep-alive
  connections) go on untouched. Invalid manifests keep the last good table (their errors are
  printed, the ``config_last_reload_successful`` gauge goes to 0);
- ``SIGINT`` / ``SIGTERM`` stop it gracefully: no new connections, requests in flight finish
  (10 s at most);
- with ``--metrics-listen``, Prometheus metrics (ingress-nginx's names) and ``/healthz``.

It prints ``listening on http://HOST:PORT`` on stderr once it accepts connections (``--listen
127.0.0.1:0`` picks a free port), then one line per reload. Manifests whose endpoints name
cluster addresses (``10.0.0.1``) must be rewritten to addresses you can reach first. Unix
only (``loop.add_signal_handler``). For HTTPS give the server an
``ingresslib.proxy.CertificateStore`` (``ingresslib/proxy/API.md``, "HTTPS"); reload on file
change and the cluster watch need names that are not public yet: run ``ingresslib serve`` for
those.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import ingresslib
from ingresslib.proxy import ProxyServer


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("-f", "--filename", action="append", required=True, dest="paths",
                    help="a manifest file or folder (repeat for more)")
    ap.add_argument("--listen", type=_address, default=("127.0.0.1", 8080))
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
    server = ProxyServer(router, on_record=metrics.observe)
    await server.start(args.listen)
    for url in server.urls:
        _say(f"listening on {url}")
    mserver = None
    if args.metrics_listen is not None:
        mhost, mport = args.metrics_listen
        mserver = ingresslib.MetricsServer(metrics, mhost, mport,
                                           healthy=lambda: not server.draining)
        _say(f"metrics on http://{mhost}:{await mserver.start()}/metrics")
    metrics.reload_succeeded(time.time())

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
            metrics.set_ingresses(router.table.served)  # drop series of removed Ingresses
            metrics.reload_succeeded(time.time())
            _say(f"reloaded: {len(router.table.served)} Ingress(es) served")

    reloader = asyncio.create_task(reload_forever())
    try:
        await server.serve_until(stop)                # graceful shutdown once `stop` is set
    finally:
        reloader.cancel()
        if mserver is not None:
            await mserver.close()
    _say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
