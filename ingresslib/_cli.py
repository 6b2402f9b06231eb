"""The ``ingresslib`` command line: serve, explain, check, demo.

Exit codes: 0 success, 2 invalid input at start-up (manifests, ``--config``, ``--listen``
values, an unusable kubeconfig) or usage (argparse's own code), 1 runtime failure (a port in
use, a cluster watch that cannot go on).
Errors and ``listening on`` lines go to stderr; machine output (``--output json``) to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _add_source_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=required,
        metavar="PATH",
        help="manifest file or folder (YAML or JSON); repeatable",
    )
    p.add_argument("--ingress-class", default=None, help="serve only Ingresses of this IngressClass")
    p.add_argument("--controller", default=None, help="serve only IngressClasses with this spec.controller")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingresslib", description="Kubernetes Ingress routing without a cluster."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="proxy HTTP(S) by the Ingress rules")
    _add_source_args(serve, required=False)
    serve.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    serve.add_argument("--tls-listen", default=None, metavar="HOST:PORT",
                       help="HTTPS listener (certificates from kubernetes.io/tls Secrets; with "
                            "--kubernetes, Secrets are read only when this is given)")
    serve.add_argument("--metrics-listen", default=None, metavar="HOST:PORT")
    serve.add_argument("--config", default=None, metavar="PATH",
                       help="ingress-nginx style ConfigMap manifest; followed live like the "
                            "manifests (an invalid edit keeps the settings in use)")
    serve.add_argument("--kubernetes", action="store_true",
                       help="watch the Kubernetes API instead of files (needs ingresslib[k8s])")
    serve.add_argument("--namespace", default=None, metavar="NS",
                       help="with --kubernetes: watch one namespace (default: all)")
    serve.add_argument("--kubeconfig", default=None, metavar="PATH",
                       help="with --kubernetes: kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    serve.add_argument("--access-log", choices=("text", "json", "off"), default="text",
                       help="access log on stdout: ingress-nginx's default line, JSON, or none")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    serve.add_argument("--max-connections", type=int, default=10000, metavar="N",
                       help="client connections accepted at once (more are closed)")
    serve.add_argument("--reload-interval", type=float, default=1.0, metavar="SECONDS",
                       help="how often the manifest and --config files are checked for "
                            "changes (0: never)")
    serve.add_argument("--shutdown-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="on SIGINT/SIGTERM, how long in-flight requests may take to finish")
    serve.set_defaults(handler="serve")

    explain = sub.add_parser("explain", help="which ingress, rule and backend a URL hits")
    _add_source_args(explain)
    explain.add_argument("url", help="http://host/path, host/path, or /path (host-less)")
    explain.add_argument("-H", "--header", dest="headers", action="append", default=[],
                         metavar="NAME:VALUE", help="request header (for canary/affinity); repeatable")
    explain.add_argument("-X", "--method", default="GET")
    explain.add_argument("--output", "-o", choices=("text", "json"), default="text")
    explain.set_defaults(handler="explain")

    check = sub.add_parser("check", help="validate manifests; exit 0, or 2 with every error")
    _add_source_args(check)
    check.set_defaults(handler="check")

    demo = sub.add_parser("demo", help="the embedded demo (see README)")
    demo.add_argument("--listen", default=None, metavar="HOST:PORT",
                      help="HTTP listener (default 127.0.0.1:8080; with --once a free port)")
    demo.add_argument("--tls-listen", default=None, metavar="HOST:PORT",
                      help="HTTPS listener (default 127.0.0.1:8443; with --once a free port)")
    demo.add_argument("--once", action="store_true",
                      help="send a few requests through the proxy, print them, exit (0 if all as expected)")
    demo.add_argument("--seed", type=int, default=None, help="seed for random choices (canary)")
    demo.set_defaults(handler="demo")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: str = args.handler
    if handler == "explain":
        from ._explain import explain_main

        return explain_main(args)
    if handler == "check":
        from ._explain import check_main

        return check_main(args)
    if handler == "demo":
        from ._demo import demo_main

        return demo_main(args)
    if handler == "serve":
        from ._serve import serve_main

        return serve_main(args)
    raise AssertionError(handler)
