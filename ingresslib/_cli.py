"""The ``ingresslib`` command line: serve, explain, check, demo.

Exit codes: 0 success, 2 invalid input at start-up (manifests, ``--config``, ``--listen``
values, two listeners on one address, an unusable kubeconfig) or usage (argparse's own code),
1 runtime failure (a port in use, a listen host that does not resolve, a cluster watch that
cannot go on, output that cannot be written: one line, no traceback), 130 for a Ctrl-C while
``serve`` reads its files or builds its first table, before it listens (the shell's 128 +
SIGINT), while ``demo`` starts or runs ``--once``, or while ``check`` or ``explain`` runs
(reading ``-f -`` from a terminal...), 143 for a SIGTERM then (128 + SIGTERM; once it listens, SIGTERM drains and exits 0).
Errors and ``listening on`` lines go to stderr; machine output (``--output json``) to stdout.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import re
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["main", "build_parser"]


def _add_source_args(p: argparse.ArgumentParser, *, required: bool = True,
                     stdin: bool = False) -> None:
    p.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=required,
        metavar="PATH",
        help="manifest file or folder (YAML or JSON"
             + ("; - alone reads standard input" if stdin else "") + "); repeatable",
    )
    verb = "serve only" if not stdin else "route as serve would: only"
    p.add_argument("--ingress-class", default=None, metavar="NAME",
                   help=f"{verb} Ingresses of this IngressClass")
    p.add_argument("--controller", default=None, metavar="NAME",
                   help=f"{verb} IngressClasses with this spec.controller")


def _config_map_ref(text: str) -> str:
    """``--tcp-services-configmap``, ``--udp-services-configmap``: NAMESPACE/NAME."""
    from ._tcp_services import split_ref

    try:
        split_ref(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _positive_int(text: str) -> int:
    """``--max-connections``: 0 or less would make a server that closes every connection."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more")
    return n


class _NotGiven(float):
    """``--shutdown-timeout``'s default (10): a float that says it was not given, so that the
    ConfigMap's ``worker-shutdown-timeout`` counts instead (``_serve_reload.shutdown_timeout``)."""

    not_given = True


class _NotGivenInt(int):
    """``--max-connections``' default (10000): an int that says it was not given, so that the
    ConfigMap's ``max-worker-connections`` counts instead (``_serve_limits.connection_bound``)."""

    not_given = True


def _seconds(text: str) -> float:
    """A duration option: a finite number of seconds, 0 or more (``nan``, ``inf`` and
    negative values would silently turn the feature off or wait forever)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of seconds, 0 or more")
    return value


#: Go's ``strconv.ParseBool``, which pflag's bool flags use (``--metrics-per-host=false``).
_GO_BOOLS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
             **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}


def _go_bool(text: str) -> bool:
    """A bool option's value as the controller's flags take it: ``--metrics-per-host=false``
    (alone, ``--metrics-per-host``, it is true)."""
    try:
        return _GO_BOOLS[text]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"invalid boolean {text!r} (true or false, as ingress-nginx's flag)") from None


#: A number as Go's ``strconv.ParseFloat`` reads it (atof.go ``readFloat`` and ``special``,
#: atoi.go ``underscoreOK``), where Python's ``float`` differs: ASCII digits only (``float``
#: reads "１" and "٣"); "_" only between digits, or after a "0x" prefix (atof_test.go:
#: "1_23.50_0_0e+1_2" is 1.235e+14, "123_.5e+12" a syntax error); hexadecimal mantissas
#: (``float`` reads none) with their "p" exponent, which Go requires ("Must have exponent").
_GO_DIGITS = "[0-9](?:_?[0-9])*"
_GO_HEX_DIGITS = "[0-9a-f](?:_?[0-9a-f])*"
_GO_FLOAT_RE = re.compile(
    rf"[+-]?(?:(?P<dec>(?:{_GO_DIGITS}(?:\.(?:{_GO_DIGITS})?)?|\.{_GO_DIGITS})"
    rf"(?:e[+-]?{_GO_DIGITS})?)"
    rf"|(?P<hex>0x(?:_?{_GO_HEX_DIGITS}(?:\.(?:{_GO_HEX_DIGITS})?)?|\.{_GO_HEX_DIGITS})"
    rf"p[+-]?{_GO_DIGITS})"
    r"|(?P<inf>inf(?:inity)?))|(?P<nan>nan)",
    re.IGNORECASE | re.ASCII)


def _go_floats(text: str) -> list[float]:
    """``--time-buckets`` and the other bucket options: numbers separated by commas, as
    pflag's ``Float64Slice`` parses them (each part by ``strconv.ParseFloat``, its syntax
    ``_GO_FLOAT_RE``: an empty part is refused too). NaN is refused: it bounds no bucket
    (``Metrics``: ValueError)."""
    out = []
    for part in text.split(","):
        number = _GO_FLOAT_RE.fullmatch(part)
        if number is None:
            raise argparse.ArgumentTypeError(f"invalid number {part!r} in {text!r}")
        if number["nan"]:
            raise argparse.ArgumentTypeError(f"{part!r}: a bucket bound must be a number")
        plain = part.replace("_", "")
        try:
            value = float.fromhex(plain) if number["hex"] else float(plain)
        except OverflowError:  # fromhex; float() gives inf
            value = math.inf
        if math.isinf(value) and not number["inf"]:
            # ParseFloat("1e400"), ("0x1p1024"): ErrRange (pflag refuses it); "+Inf" itself
            # is a number.
            raise argparse.ArgumentTypeError(f"number {part!r} out of range in {text!r}")
        out.append(value)
    return out


def _csv_names(text: str) -> list[str]:
    """``--exclude-socket-metrics``: names separated by commas (pflag's ``StringSlice``,
    read as one CSV record; an empty value is no name)."""
    import csv

    return next(csv.reader([text]), [])


def _add_metrics_args(serve: argparse.ArgumentParser) -> None:
    """The controller's metrics flags (ingress-nginx pkg/flags/flags.go), its names and
    defaults; they shape what ``--metrics-listen`` serves. A list option given twice adds to
    the first, as pflag's slices."""
    def flag(name: str, default: bool, text: str) -> None:
        serve.add_argument(name, type=_go_bool, nargs="?", const=True, default=default,
                           metavar="BOOL", help=f"{text} (default: {str(default).lower()})")

    flag("--metrics-per-host", True, "label the per-request metrics with the host, as "
         "ingress-nginx's flag (=false: no host label)")
    flag("--metrics-per-undefined-host", False,
         "count the requests for hosts no Ingress defines too, labelled with their Host "
         "(needs --metrics-per-host; the first 1000 such names, later ones host=\"\")")
    flag("--report-status-classes", False, "status label 2xx, 4xx, ... instead of the status")
    serve.add_argument("--exclude-socket-metrics", type=_csv_names, action="extend",
                       default=None, metavar="NAME,...",
                       help="per-request metrics not to export (requests, request_size, "
                            "bytes_sent, ..., with or without nginx_ingress_controller_; an "
                            "unknown name is ignored with a warning, as ingress-nginx ignores "
                            "it) (default: none)")
    for name, what, default in (
            ("--time-buckets", "the duration histograms'", "0.005,...,10 (Prometheus's)"),
            ("--length-buckets", "request_size's and response_size's", "10,20,...,100"),
            ("--size-buckets", "bytes_sent's", "10,100,...,1e+07")):
        serve.add_argument(name, type=_go_floats, action="extend", default=None,
                           metavar="N,...",
                           help=f"{what} bucket upper bounds, comma-separated (taken in "
                                f"increasing order; default: {default}, as ingress-nginx)")


def _version() -> str:
    from . import __version__

    return str(__version__)


def version_line(verbose: bool = False) -> str:
    """``--version``'s line: ``ingresslib 0.1.0``; with ``--verbose`` also the implementations
    in use, ``ingresslib 0.1.0 (matcher: cython, picker: python)``: the route matcher
    (``_match`` compiled, or its pure twin ``_match_py``) and the balancers' per-route counters
    (``_pick`` or ``_pick_py``). Each falls back to its twin when it was not built or with
    ``INGRESSLIB_NO_EXTENSIONS=1``, and nothing at run time says so but this (and
    ``ingresslib.MATCHER`` for the matcher). A table whose rules exceed the compiled matcher's
    bounds is served by the twin whatever this says (``RouteTable.matcher``)."""
    line = f"ingresslib {_version()}"
    if not verbose:
        return line
    from ._matcher import MATCHER
    from ._route_state import COUNTERS

    return f"{line} (matcher: {MATCHER}, picker: {COUNTERS})"


#: ``ingresslib --version --verbose`` (either order, nothing else): argparse's version action
#: prints and exits as soon as it meets ``--version``, before a later ``--verbose`` is read,
#: and the plain ``--version`` line stays as it is (a format scripts may read).
_VERBOSE_VERSION = (["--version", "--verbose"], ["--verbose", "--version"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingresslib", description="Kubernetes Ingress routing without a cluster."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="show the version and exit; --version --verbose also names the "
                             "matcher and balancer picker in use (cython: compiled, python: "
                             "the pure twin)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="proxy HTTP(S) by the Ingress rules",
        description="Proxy HTTP(S) by the Ingress rules of the manifests (-f) or of the cluster "
                    "(--kubernetes); reload on a file change or SIGHUP, drain on SIGTERM, "
                    "SIGINT or SIGQUIT.")
    _add_source_args(serve, required=False)
    serve.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                       help="HTTP listener (default: 127.0.0.1:8080, this machine only; "
                            "0.0.0.0:8080 for every interface; HOST alone: port 8080; port 0: "
                            "a free one, printed in the 'listening on' line)")
    serve.add_argument("--tls-listen", default=None, metavar="HOST:PORT",
                       help="HTTPS listener (certificates from kubernetes.io/tls Secrets; with "
                            "--kubernetes, those Secrets are read only when this is given)")
    serve.add_argument("--default-ssl-certificate", default=None, metavar="NAMESPACE/NAME",
                       help="with --tls-listen: the Secret (tls.crt/tls.key, any type) "
                            "served when no other certificate applies (no SNI, an unknown "
                            "name, a host whose Secret is missing or unusable; the first "
                            "two are refused instead under the --config ConfigMap's "
                            "ssl-reject-handshake), as "
                            "ingress-nginx's flag; from the "
                            "manifests (-f) or the cluster, followed when it changes; missing "
                            "or unusable: the generated certificate, with a warning")
    serve.add_argument("--enable-ssl-passthrough", action="store_true",
                       help="with --tls-listen: honour the ssl-passthrough annotation, as "
                            "ingress-nginx's flag: a ClientHello naming such a host is piped "
                            "untouched to the endpoint of its '/' rule, whose certificate the "
                            "client sees (default: off, the annotation ignored with a warning)")
    serve.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                       help="serve Prometheus /metrics and /healthz (200 once the first table "
                            "is loaded, 503 before and while stopping) on their own listener "
                            "(default: none; HOST alone: port 10254, as ingress-nginx)")
    _add_metrics_args(serve)
    serve.add_argument("--config", default=None, metavar="PATH",
                       help="ingress-nginx style ConfigMap manifest; followed live like the "
                            "manifests (an invalid edit keeps the settings in use)")
    serve.add_argument("--tcp-services-configmap", default=None, metavar="NAMESPACE/NAME",
                       type=_config_map_ref,
                       help="the ConfigMap (among the manifests, or in the cluster with "
                            "--kubernetes) whose keys are ports to listen on (on --listen's "
                            "host) and whose values are namespace/service:port[:PROXY][:PROXY]: "
                            "each connection is piped to the Service's endpoints, as "
                            "ingress-nginx's flag (default: none)")
    serve.add_argument("--udp-services-configmap", default=None, metavar="NAMESPACE/NAME",
                       type=_config_map_ref,
                       help="as --tcp-services-configmap, for UDP: values "
                            "namespace/service:port, each client's datagrams relayed to one of "
                            "the Service's UDP endpoints (a session per client address, ended "
                            "by proxy-stream-responses replies or proxy-stream-timeout of quiet) "
                            "(default: none)")
    serve.add_argument("--kubernetes", action="store_true",
                       help="watch the Kubernetes API instead of files (needs lightkube, the "
                            "k8s extra: pip install 'lightkube>=1.0.1,<1.1', or "
                            "pip install '.[k8s]' from an ingresslib checkout)")
    serve.add_argument("--namespace", default=None, metavar="NS",
                       help="with --kubernetes: watch one namespace (default: all)")
    serve.add_argument("--kubeconfig", default=None, metavar="PATH",
                       help="with --kubernetes: one kubeconfig file (default: the pod's "
                            "service account when run in a cluster, else $KUBECONFIG when set "
                            "and not empty (one file, or a list separated by "
                            f"'{os.pathsep}', merged as kubectl merges them), else "
                            "~/.kube/config)")
    serve.add_argument("--no-auth-secrets", action="store_true",
                       help="with --kubernetes: never read the Secrets Ingresses name (the "
                            "routes of basic/digest auth, and of an auth-tls-secret or "
                            "proxy-ssl-secret not among --tls-listen's kubernetes.io/tls "
                            "Secrets, then answer 503, as for a missing Secret), save the "
                            "--default-ssl-certificate one")
    serve.add_argument("--access-log", choices=("text", "json", "off"), default="text",
                       help="access log on stdout: ingress-nginx's line (or the --config "
                            "ConfigMap's log-format-upstream), JSON, or none (default: text)")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                       help="the least severe messages logged on stderr (default: info; the "
                            "access log, on stdout, is set by --access-log)")
    serve.add_argument("--max-connections", type=_positive_int, default=_NotGivenInt(10000),
                       metavar="N",
                       help="client connections accepted at once (more are closed; TCP "
                            "services' connections and UDP services' sessions are bounded "
                            "apart by the same number; default: the --config ConfigMap's "
                            "max-worker-connections, else 10000)")
    serve.add_argument("--reload-interval", type=_seconds, default=1.0, metavar="SECONDS",
                       help="how often the manifest and --config files are checked for "
                            "changes (default: 1; 0: only on SIGHUP)")
    serve.add_argument("--shutdown-timeout", type=_seconds, default=_NotGiven(10.0),
                       metavar="SECONDS",
                       help="on SIGINT/SIGTERM/SIGQUIT, how long in-flight requests may take "
                            "to finish (default: the --config ConfigMap's "
                            "worker-shutdown-timeout, else 10)")
    serve.set_defaults(handler="serve")

    explain = sub.add_parser(
        "explain", help="which ingress, rule and backend a URL hits",
        description="Which ingress, rule and backend a URL hits (or why none: 404, or a "
                    "rejected path), and the endpoint the router picks when the files hold the "
                    "Services and endpoints; the route's access control (source ranges, basic "
                    "authentication, a denied location) and what the proxy answers, in its "
                    "own order (a redirect, a CORS preflight's 204, 503, 403, 401, or the "
                    "endpoint), for --client-ip and the -H headers; its CORS headers, rate "
                    "limits, upstream Host and default-backend Service; the rules the one it hits shadows (check's "
                    "warnings), and for an https:// URL the certificate the handshake gets. "
                    "Exit 0 whatever the route; 2 for invalid manifests, an invalid --config "
                    "or a bad argument.")
    _add_source_args(explain, stdin=True)
    explain.add_argument("url", help="http://host/path, host/path, or /path (host-less); "
                                     "encoded as a browser sends it (IDNA host, %%XX path)")
    explain.add_argument("-H", "--header", dest="headers", action="append", default=[],
                         metavar="NAME:VALUE",
                         help="request header (for canary/affinity, Origin for CORS; a Host header is routed on, "
                              "as with curl; Authorization is checked as the proxy checks "
                              "basic authentication, never printed); repeatable")
    explain.add_argument("-X", "--method", default="GET", metavar="METHOD",
                         help="request method, as curl -X (default: GET; HEAD, OPTIONS for a "
                              "CORS preflight, ...)")
    explain.add_argument("--client-ip", default=None, metavar="ADDR",
                         help="the client's address (the TCP peer): the verdict of the "
                              "route's source ranges for it (403 or not); with --config "
                              "trusting forwarded headers, -H 'X-Forwarded-For: ...' counts "
                              "as serve reads it")
    explain.add_argument("--config", default=None, metavar="PATH",
                         help="the ingress-nginx style ConfigMap serve --config reads "
                              "(block-cidrs, default source ranges, use-forwarded-headers, "
                              "proxy-real-ip-cidr, ...)")
    explain.add_argument("--tls", action="store_true",
                         help="answer as serve --tls-listen would, its HTTPS port 443: "
                              "http:// requests for a host with TLS get the ssl-redirect")
    explain.add_argument("--tls-listen", default=None, metavar="HOST:PORT",
                         help="as --tls, with serve's --tls-listen value: the redirect's "
                              "Location names its port")
    explain.add_argument("--default-ssl-certificate", default=None, metavar="NAMESPACE/NAME",
                         help="answer as serve --default-ssl-certificate would: an https:// "
                              "URL no Ingress's Secret answers (no SNI, an unknown name, a "
                              "host whose Secret is missing or unusable, a tls entry without "
                              "secretName) gets this kubernetes.io/tls Secret's certificate "
                              "from the files; missing or unusable: the generated one, as "
                              "serve (default: the generated one)")
    explain.add_argument("--no-auth-secrets", action="store_true",
                         help="answer as serve --kubernetes --no-auth-secrets would: only the "
                              "files' kubernetes.io/tls Secrets are read, and none without "
                              "--tls, --tls-listen or an https:// URL (the routes of "
                              "basic/digest auth, and of an auth-tls-secret or "
                              "proxy-ssl-secret not read, answer 503, as for a missing "
                              "Secret)")
    explain.add_argument("--enable-ssl-passthrough", action="store_true",
                         help="answer as serve --enable-ssl-passthrough would: an https:// URL "
                              "of an ssl-passthrough host is piped to its '/' rule's endpoint "
                              "(default: off, as ingress-nginx's flag: the annotation is "
                              "ignored and the TLS terminated)")
    explain.add_argument("--output", "-o", choices=("text", "json"), default="text",
                         help="text for a person, or json: one JSON document on stdout, "
                              "errors included (exit 2 with them) (default: text)")
    explain.set_defaults(handler="explain")

    check = sub.add_parser(
        "check", help="validate manifests; exit 0, or 2 with every error",
        description="Validate manifests; exit 0, or 2 with every error. Invalid annotation "
                    "values and shadowed rules are printed as warnings (exit 0).")
    _add_source_args(check, stdin=True)
    check.add_argument("--config", default=None, metavar="PATH",
                       help="the ingress-nginx style ConfigMap serve --config reads: checked "
                            "as serve checks it (exit 2 naming file and field), and the "
                            "annotation warnings name its defaults")
    check.add_argument("--enable-ssl-passthrough", action="store_true",
                       help="report the ssl-passthrough annotations as serve "
                            "--enable-ssl-passthrough logs them (a wildcard host, no '/' rule); "
                            "default: off, as ingress-nginx's flag: each such host is said to "
                            "be ignored, its TLS terminated")
    check.add_argument("--output", "-o", choices=("text", "json"), default="text",
                       help="text for a person, or json: one JSON document on stdout, "
                            "errors included (exit 2 with them) (default: text)")
    check.set_defaults(handler="check")

    demo = sub.add_parser(
        "demo", help="the embedded demo (see README)",
        description="The embedded demo (see README): a proxy on 127.0.0.1 in front of echo pods, "
                    "routed by examples/demo/demo.yaml (fan-out, wildcard host, canary, TLS).")
    demo.add_argument("--listen", default=None, metavar="HOST:PORT",
                      help="HTTP listener (default 127.0.0.1:8080; with --once a free port)")
    demo.add_argument("--tls-listen", default=None, metavar="HOST:PORT",
                      help="HTTPS listener (default 127.0.0.1:8443; with --once a free port)")
    demo.add_argument("--once", action="store_true",
                      help="send a few requests through the proxy, print them, exit (0 if all as expected)")
    demo.add_argument("--seed", type=int, default=None, help="seed for random choices (canary)")
    demo.set_defaults(handler="demo")
    return parser


def _closed_streams_to_devnull() -> None:
    """Started with file descriptor 1 or 2 closed (``>&-``, ``2>&-``), Python has no
    ``sys.stdout`` / ``sys.stderr`` (None), and ``print(..., file=sys.stderr)`` with None
    writes to *stdout*: ``check -o json -f bad.yaml 2>&-`` wrote its error lines into the JSON
    document, ``demo 2>&-`` its ``listening on`` lines among the access log, and ``demo >&-``
    its access log to stderr (``serve`` checks for None itself since 8f5d4b2; the other
    subcommands did not). A missing stream is the null device here: what would go there is
    dropped, as with ``>/dev/null``, and nothing lands on the other stream."""
    global _NULL_STREAM
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            if _NULL_STREAM is None:
                # One for the process (a ``main`` called again, in-process, reuses it: a new
                # file per call would be left unclosed when its caller puts None back).
                _NULL_STREAM = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
                # Closed at exit (a ResourceWarning otherwise): the atexit functions run
                # before the interpreter flushes sys.stdout/stderr, which skips closed files.
                atexit.register(_NULL_STREAM.close)
            setattr(sys, name, _NULL_STREAM)


#: The null device ``_closed_streams_to_devnull`` stands in for a missing stream.
_NULL_STREAM: TextIO | None = None


def main(argv: Sequence[str] | None = None) -> int:
    _closed_streams_to_devnull()
    if list(sys.argv[1:] if argv is None else argv) in _VERBOSE_VERSION:
        print(version_line(verbose=True))
        return 0
    args = _parse(argv)
    handler: str = args.handler
    if handler == "serve":
        try:
            from ._serve import serve_main
        except KeyboardInterrupt:  # Ctrl-C while serve's own modules are imported
            print("ingresslib serve: interrupted before serving", file=sys.stderr)
            return 130
        return serve_main(args)
    try:
        return _run(handler, args)
    except KeyboardInterrupt:
        if handler == "demo":  # demo answers its own Ctrl-C (130) where it can
            raise
        # Ctrl-C while `check -f -` waits for standard input (typed by mistake, a terminal),
        # or while a large folder is read: the shell's 128 + SIGINT, and no traceback.
        print(f"ingresslib {handler}: interrupted", file=sys.stderr)
        if getattr(args, "output", "text") == "json":  # one document, errors included
            import json

            try:
                print(json.dumps({"error": "interrupted", "errors": [{"message": "interrupted"}],
                                  "ok": False}, indent=2, sort_keys=True))
            except BrokenPipeError:
                # `check -o json -f - | jq`: the terminal's Ctrl-C ends the reader too, so this
                # write meets a closed pipe; still the Ctrl-C's exit, no second traceback.
                _stdout_to_devnull()
        return 130
    except BrokenPipeError:
        # `ingresslib explain ... | head -1`: the reader left; nothing to say.
        _stdout_to_devnull()
        return 1
    except OSError as exc:
        # `ingresslib check ... > /dev/full` (ENOSPC), EIO: a runtime failure, one line.
        print(f"ingresslib {handler}: error: cannot write the output: {exc}", file=sys.stderr)
        _stdout_to_devnull()
        return 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, its unknown options refused by the subcommand they follow.

    ``parse_args`` leaves the subcommands' unknown arguments to the top-level parser, whose
    error (``ingresslib: error: unrecognized arguments: --outptu json``) came with the
    top-level usage, not a word of the subcommand's options, and with ``-o json`` nothing on
    stdout (check and explain promise one JSON document, errors included)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _refuse_unknown(_subcommand_parser(parser, args.command), args, extras)
    return args


def _subcommand_parser(parser: argparse.ArgumentParser, command: str
                       ) -> argparse.ArgumentParser:
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub: argparse.ArgumentParser = subparsers.choices[command]
    return sub


def _refuse_unknown(sub: argparse.ArgumentParser, args: argparse.Namespace,
                    extras: Sequence[str]) -> None:
    """argparse's own message and exit code (2), with the subcommand's usage and the option
    the first unknown one is most likely a misspelling of (Python 3.14's ``suggest_on_error``
    does this for choices only)."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    meant = _nearest_option(sub, extras)
    if meant is not None:
        message += f" (did you mean {meant}?)"
    output = getattr(args, "output", "text")
    if output != "json":
        sub.error(message)  # usage, then "ingresslib CMD: error: ...", exit 2
    from ._explain import UsageError, _usage

    sys.stderr.write(sub.format_usage())
    raise SystemExit(_usage(args.command, UsageError(message), output,
                            getattr(args, "url", None)))


def _nearest_option(sub: argparse.ArgumentParser, extras: Sequence[str]) -> str | None:
    import difflib

    given = next((e.partition("=")[0] for e in extras if e.startswith("--")), None)
    if given is None:
        return None
    options = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    near = difflib.get_close_matches(given, options, n=1, cutoff=0.75)
    return near[0] if near else None


def _stdout_to_devnull() -> None:
    """After a failed write to stdout: Python's signal docs ("Note on SIGPIPE") point stdout
    at devnull so that the interpreter's final flush does not raise again (a second message,
    "Exception ignored ...")."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # no file descriptor (tests, embedding)
        return
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


def _run(handler: str, args: argparse.Namespace) -> int:
    if handler == "explain":
        from ._explain import explain_main

        return explain_main(args)
    if handler == "check":
        from ._explain import check_main

        return check_main(args)
    if handler == "demo":
        from ._demo import demo_main

        return demo_main(args)
    raise AssertionError(handler)
