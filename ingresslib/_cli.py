"""The ``ingresslib`` command line: serve, explain, check, demo.

Exit codes: 0 success, 2 invalid manifests or usage (argparse's own code), 1 runtime failure.
Errors and ``listening on`` lines go to stderr; machine output (``--output json``) to stdout.
"""

from __future__ import annotations

import argparse
import sys
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
    serve.add_argument("--tls-listen", default=None, metavar="HOST:PORT")
    serve.add_argument("--metrics-listen", default=None, metavar="HOST:PORT")
    serve.add_argument("--config", default=None, metavar="PATH", help="ingress-nginx style ConfigMap")
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
        from ._explain import demo_main

        return demo_main(args)
    if handler == "serve":  # pragma: no cover - filled in by the proxy issue
        print("ingresslib serve: not available yet", file=sys.stderr)
        return 1
    raise AssertionError(handler)
