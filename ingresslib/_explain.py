"""``ingresslib explain`` and ``ingresslib check``: the route table, told to a person."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from ._decode import unread_versions
from ._errors import FieldError, ValidationError
from ._resources import Resources
from ._table import RouteTable

__all__ = ["explain_main", "check_main", "split_url", "explain_url", "render_text", "UsageError"]


class UsageError(ValueError):
    """A command-line value ``explain`` cannot use (a URL, a ``-H`` header, a method)."""


#: RFC 9110 §5.6.2: ``token = 1*tchar``; header names and methods are tokens.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a browser percent-encodes in a path or query (WHATWG URL, "path percent-encode set":
#: C0 controls, space, ``"``, ``#``, ``<``, ``>``, ``?``, backquote, ``{``, ``}``, and every
#: code point above ASCII, as UTF-8). ``#`` and ``?`` are split off before this is applied.
_ENCODE_RE = re.compile(r'[\x00-\x20"<>`{}\x7f-\U0010ffff]')


def _percent_encode(text: str) -> str:
    return _ENCODE_RE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8")), text)


def _ascii_host(host: str) -> str:
    """``host[:port]`` as a client sends it: a non-ASCII name in its IDNA (``xn--``) form."""
    if host.isascii():
        return host
    name, port = host, ""
    head, sep, tail = host.rpartition(":")
    if sep and tail.isdigit():
        name, port = head, ":" + tail
    try:
        return name.encode("idna").decode("ascii") + port
    except UnicodeError as exc:
        raise UsageError(f"host {name!r} is not a valid internationalised domain name ({exc})") from None


def split_url(url: str) -> tuple[str, str]:
    """``(host, path-with-query)`` from ``http://host/path``, ``host/path`` or ``/path``.

    The path is kept as written (percent-encoding included): it is what a client sends. What a
    client cannot send raw is encoded as a browser does: a non-ASCII host to its IDNA form,
    spaces and non-ASCII characters of the path to ``%XX``. Userinfo and a fragment never
    reach the server and are dropped. A URL that cannot be parsed raises :class:`UsageError`.
    """
    if not url.strip():
        raise UsageError("empty URL: give http://host/path, host/path or /path")
    if url.startswith("/"):
        host, rest = "", url
        rest = rest.split("#", 1)[0]
        return host, _percent_encode(rest)
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UsageError(f"cannot parse URL {url!r}: {exc}") from None
    path = _percent_encode(parts.path or "/")
    if parts.query:
        path += "?" + _percent_encode(parts.query)
    return _ascii_host(parts.netloc.rsplit("@", 1)[-1]), path


def explain_url(
    table: RouteTable, url: str, *, res: Resources | None = None, method: str = "GET",
    headers: Sequence[tuple[str, str]] = (), ingress_class: str | None = None,
    controller: str | None = None,
) -> dict[str, Any]:
    """What the table does with ``url``; with ``res``, also which endpoint the router picks.

    A ``Host`` header in ``headers`` is the host routed on, as for ``curl -H 'Host: ...'``:
    the Host header, not the URL, is what a server sees.
    """
    host, path = split_url(url)
    hosts = [value for name, value in headers if name.lower() == "host"]
    if hosts:
        host = _ascii_host(hosts[-1].strip())
    refused = _refused_before_routing(method, host, len(hosts))
    if refused is not None:
        return {"url": url, "host": host, "path": path, "status": refused[0],
                "reason": f"rejected: {refused[1]}", "match": None}
    out = {"url": url, **table.explain(host, path)}
    if out.get("match") is not None and "canary" in out["match"]:
        served = table.match(host, path)  # does not raise: explain() just matched it
        if served is not None and served.canary is not None:
            out["match"]["canary"]["rules"] = _canary_rules(served.canary.annotations)
    if res is not None and out.get("match") is not None:
        try:
            from ._router import Router
        except ImportError:  # the router is optional for explain
            return out
        router = Router(res, ingress_class=ingress_class, controller=controller, seed=0)
        d = router.route(method, host, path, headers=headers)
        if d is not None:
            out["decision"] = {
                "service": d.service, "namespace": d.namespace, "port": d.port,
                "endpoint": None if d.endpoint is None else f"{d.endpoint[0]}:{d.endpoint[1]}",
                "canary": d.canary,
            }
            # Why the target port or the endpoints are missing (the backend's EndpointSet).
            why = getattr(getattr(d.handle, "eps", None), "reason", None)
            if why:
                out["decision"]["why"] = why
            affinity = _affinity(d)
            if affinity is not None:
                out["decision"]["affinity"] = affinity
            if d.endpoint is None:
                out["status"] = 503
                out["reason"] += ("; the backend has no ready endpoint" if d.service is not None else
                                  "; a resource backend is not a Service: nothing to proxy to")
    return out


def _refused_before_routing(method: str, host: str, n_hosts: int) -> tuple[int, str] | None:
    """``(status, reason)`` when the proxy refuses the request before it routes it, as
    ``ProxyConnection._parse_request`` does: CONNECT (405), two Host headers (400), and a Host
    value ``check_host`` rejects (400: an empty label, a port that is no number in 1-65535,
    control characters, ...), so explain does not report a route the server never takes."""
    try:
        from .proxy._errors import RemoteProxyError
        from .proxy._headers import check_host
    except ImportError:  # pragma: no cover - the proxy is optional for explain
        return None
    if method == "CONNECT":
        return 405, "CONNECT is not supported"
    if n_hosts > 1:
        return 400, "duplicate Host"
    try:
        check_host(host.encode("latin-1", "replace"))
    except RemoteProxyError as exc:
        return exc.status_hint, str(exc)
    return None


def _canary_rules(annotations: Any) -> dict[str, Any]:
    """When the canary serves, from its annotations (parsed as the router parses them)."""
    from ._canary import parse_canary

    cfg, _warnings = parse_canary(annotations)
    rules: dict[str, Any] = {"weight": cfg.weight, "weight_total": cfg.weight_total}
    if cfg.header is not None:
        rules["header"] = cfg.header
        if cfg.header_value is not None:
            rules["header_value"] = cfg.header_value
        elif cfg.header_pattern is not None:
            rules["header_pattern"] = annotations.get(
                "nginx.ingress.kubernetes.io/canary-by-header-pattern")
    if cfg.cookie is not None:
        rules["cookie"] = cfg.cookie
    return rules


def _canary_text(rules: dict[str, Any]) -> str:
    # ingress-nginx's canary docs: "canary-by-header -> canary-by-cookie -> canary-weight".
    parts = []
    if "header" in rules:
        if "header_value" in rules:
            parts.append(f"header {rules['header']}: {rules['header_value']}")
        elif "header_pattern" in rules:
            parts.append(f"header {rules['header']} matching {rules['header_pattern']!r}")
        else:
            parts.append(f"header {rules['header']}: always (never: the main backend)")
    if "cookie" in rules:
        parts.append(f"cookie {rules['cookie']}=always (never: the main backend)")
    parts.append(f"weight {rules['weight']} of {rules['weight_total']} requests")
    return ", else ".join(parts)


def _affinity(d: Any) -> dict[str, Any] | None:
    """Cookie affinity of the serving backend: the cookie, and what this request gets."""
    served = d.served if d.served is not None else d.match
    ann = served.annotations
    if ann.get("nginx.ingress.kubernetes.io/affinity") != "cookie":
        return None
    name = d.set_cookie.split("=", 1)[0] if d.set_cookie else (
        ann.get("nginx.ingress.kubernetes.io/session-cookie-name", "").strip() or "INGRESSCOOKIE")
    return {"cookie": name, "set_cookie": d.set_cookie}


def render_text(info: dict[str, Any]) -> str:
    lines = [f"{info['url']}"]
    lines.append(f"  host {info['host']!r}, path {info['path']!r}"
                 + (f" (canonical {info['canonical_path']!r})" if "canonical_path" in info else ""))
    m = info.get("match")
    if m is None:
        lines.append(f"  -> {info['status']}: {info['reason']}")
        return "\n".join(lines)
    if m["is_default_backend"]:
        lines.append(f"  -> default backend of Ingress {m['ingress']}"
                     + (f" (host {m['host']})" if m["host"] else ""))
    else:
        lines.append(f"  -> Ingress {m['ingress']}, rule host {m['host'] or '*'}, "
                     f"{m['path_type']} {m['path']!r}")
    if m.get("service") is not None:
        lines.append(f"     backend service {m['namespace']}/{m['service']}:{m['port']}")
    elif "resource" in m:
        r = m["resource"]
        lines.append(f"     backend resource {r['kind']} {m['namespace']}/{r['name']}")
    if "canary" in m:
        c = m["canary"]
        lines.append(f"     canary: Ingress {c['ingress']} -> {_backend_text(c)}")
        if "rules" in c:
            lines.append(f"       serves on {_canary_text(c['rules'])}")
    d = info.get("decision")
    if d is not None and d["service"] is None:
        # A resource backend (Match.service None): the router has no Service to resolve.
        lines.append("     router: a resource backend is not a Service, nothing to proxy to (503)")
    elif d is not None:
        ep = d["endpoint"] or "none ready (503)"
        why = d.get("why")
        if d["port"] is not None:
            port = d["port"]
        elif why and "no ready endpoint" in why:
            # A named targetPort is resolved through the endpoints that name it.
            port = f"unknown (a named targetPort, and {why} to name it)"
        else:
            port = f"unknown ({why or 'no such Service or port in the manifests'})"
        lines.append(f"     router picks {'canary' if d['canary'] else 'main'} {d['namespace']}/{d['service']}"
                     f" target port {port}, endpoint {ep}")
        a = d.get("affinity")
        if a is not None and a["set_cookie"]:
            lines.append(f"     session affinity: cookie {a['cookie']} (none valid in the request: "
                         f"the response sets {a['set_cookie']})")
        elif a is not None:
            lines.append(f"     session affinity: cookie {a['cookie']} (the request's cookie "
                         f"keeps this endpoint)")
    return "\n".join(lines)


def _backend_text(m: dict[str, Any]) -> str:
    if m.get("service") is not None:
        return f"service {m['namespace']}/{m['service']}:{m['port']}"
    r = m.get("resource") or {}
    return f"resource {r.get('kind')} {m['namespace']}/{r.get('name')}"


def _error_entry(e: Any) -> dict[str, Any]:
    return {"message": str(e), "source": e.source, "object": e.object, "field": e.field,
            "type": e.type}


def _load(files: Sequence[str], err: TextIO) -> Resources | ValidationError:
    """The manifests of ``-f`` (``-`` is standard input, as for kubectl), or the error.

    Raises :class:`UsageError` for ``-`` given with other ``-f`` values.
    """
    return _load_with_warnings(files)[0]


def _load_with_warnings(files: Sequence[str]) -> tuple[Resources | ValidationError, list[FieldError]]:
    """``_load``, and the fields the API server would drop (``Resources.warnings``), which
    are there for invalid manifests too: a typo (``pathtype``) is often why a field is missing
    (``pathType: Required value``), and the warning says which."""
    from ._load import collect_files, collect_text

    if "-" in files:
        if len(files) > 1:
            raise UsageError("-f - (standard input) cannot be combined with other -f values")
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise UsageError("-f -: standard input is closed")
        try:
            data = sys.stdin.buffer.read()
        except OSError as exc:
            raise UsageError(f"-f -: cannot read standard input: {exc}") from None
        c = collect_text(data, source="<stdin>")
    else:
        c = collect_files(*files)
    try:
        return c.result(), list(c.warnings)
    except ValidationError as exc:
        return exc, list(c.warnings)


def _field_warning_lines(warnings: Sequence[FieldError]) -> list[str]:
    """``FILE: Ingress default/web: unknown field "spec.x"``, each once (a file named twice
    by ``-f`` warns once per object definition)."""
    return list(dict.fromkeys(str(w) for w in warnings))


def _report_invalid(exc: ValidationError, output: str, url: str | None = None,
                    warnings: Sequence[str] = ()) -> int:
    for e in exc.errors:
        print(e, file=sys.stderr)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{len(exc.errors)} error(s)" + (f", {len(warnings)} warning(s)" if warnings else ""),
          file=sys.stderr)
    if output == "json":
        doc: dict[str, Any] = {"ok": False, "error": "invalid manifests",
                               "errors": [_error_entry(e) for e in exc.errors]}
        if warnings:
            doc["warnings"] = list(warnings)
        if url is not None:
            doc["url"] = url
        print(json.dumps(doc, indent=2, sort_keys=True))
    return 2


def _usage(command: str, exc: UsageError, output: str, url: str | None = None) -> int:
    """A bad command-line value: argparse's form and exit code (2), never a traceback."""
    print(f"ingresslib {command}: error: {exc}", file=sys.stderr)
    if output == "json":
        doc: dict[str, Any] = {"ok": False, "error": "usage", "errors": [{"message": str(exc)}]}
        if url is not None:
            doc["url"] = url
        print(json.dumps(doc, indent=2, sort_keys=True))
    return 2


def _parse_headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    """``-H NAME:VALUE`` values, checked as a server would: RFC 9110 §5.1 field names are
    tokens; §5.5 "field values containing CR, LF or NUL characters are invalid"."""
    out = []
    for h in raw:
        name, sep, value = h.partition(":")
        if not sep:
            raise UsageError(f"bad header {h!r}: expected NAME:VALUE")
        name, value = name.strip(), value.strip(" \t")
        if not _TOKEN_RE.fullmatch(name):
            raise UsageError(f"bad header {h!r}: the name must be a token (letters, digits, "
                             "and !#$%&'*+-.^_`|~), not empty")
        if any(ch in value for ch in "\r\n\x00"):
            raise UsageError(f"bad header {h!r}: the value cannot hold CR, LF or NUL")
        out.append((name, value))
    return out


def explain_main(args: argparse.Namespace) -> int:
    try:
        if not _TOKEN_RE.fullmatch(args.method):
            raise UsageError(f"bad method {args.method!r}: a method is a token (e.g. GET)")
        headers = _parse_headers(args.headers)
        split_url(args.url)
        for name, value in headers:  # the Host header is routed on: check it now
            if name.lower() == "host":
                _ascii_host(value)
        loaded = _load(args.files, sys.stderr)
    except UsageError as exc:
        return _usage("explain", exc, args.output, args.url)
    if isinstance(loaded, ValidationError):
        return _report_invalid(loaded, args.output, args.url)
    res = loaded
    table = RouteTable.build(res, ingress_class=args.ingress_class, controller=args.controller)
    info = explain_url(table, args.url, res=res, method=args.method, headers=headers,
                       ingress_class=args.ingress_class, controller=args.controller)
    if args.output == "json":
        # "ok" as in check's document and the error documents (false, exit 2): the URL was
        # explained (exit 0), whatever the route.
        print(json.dumps({"ok": True, **info}, indent=2, sort_keys=True))
    else:
        print(render_text(info))
        if info.get("match") is not None and not res.services:
            print("     (the files hold no Service: add the Services and EndpointSlices to see "
                  "the target port and endpoint)")
    return 0


def check_main(args: argparse.Namespace) -> int:
    output = getattr(args, "output", "text")
    try:
        loaded, dropped = _load_with_warnings(args.files)
    except UsageError as exc:
        return _usage("check", exc, output)
    # Fields the API server would drop (`kubectl apply` refuses them by default), printed first:
    # they often explain what follows (a canary annotation under `annotation:` is no canary).
    field_warnings = _field_warning_lines(dropped)
    if isinstance(loaded, ValidationError):
        return _report_invalid(loaded, output, warnings=field_warnings)
    res = loaded
    table = RouteTable.build(res, ingress_class=args.ingress_class, controller=args.controller)
    diagnostics = list(table.diagnostics)
    # SEMANTICS §2: "Annotation values that are invalid are reported as warnings and ignored, as
    # ingress-nginx does, never silently." The router reads the canary and balancing annotations
    # (the table only its own rules): its warnings belong in the validation report too.
    try:
        from ._router import Router
    except ImportError:  # pragma: no cover - the router is optional for check
        pass
    else:
        diagnostics += Router(res, ingress_class=args.ingress_class, controller=args.controller,
                              table=table, seed=0).warnings
    for d in diagnostics:
        print(d, file=sys.stderr)
    proxy_warnings = (field_warnings + _proxy_annotation_warnings(table, res)
                      + unread_versions(res.ignored))
    if not res.ingresses:
        # A folder of READMEs, an empty file, a wrong path to a folder: "ok" alone would
        # read as "your Ingresses are valid".
        proxy_warnings.append("no Ingress in " + ", ".join(args.files) + (
            " (folders are searched for *.yaml, *.yml and *.json files)"
            if any(os.path.isdir(f) for f in args.files) else ""))
    for w in proxy_warnings:
        print(f"warning: {w}", file=sys.stderr)
    n = len(table.served)
    warned = sum(1 for d in diagnostics if d.severity == "warning") + len(proxy_warnings)
    if output == "json":
        print(json.dumps({
            "ok": True, "ingresses": len(res.ingresses), "served": n, "routes": len(table.routes),
            "diagnostics": [str(d) for d in diagnostics],
            "warnings": [str(d) for d in diagnostics if d.severity == "warning"] + proxy_warnings,
        }, indent=2, sort_keys=True))
    else:
        print(f"ok: {len(res.ingresses)} Ingress(es), {n} served, {len(table.routes)} route(s), "
              f"{warned} warning(s)")
    return 0


def _proxy_annotation_warnings(table: RouteTable, res: Resources | None = None) -> list[str]:
    """The warnings the proxy would log for invalid annotation values on served routes (with
    the built-in settings: ``check`` has no ``--config``), each once; with ``res``, also what
    the server says of a basic-auth Secret (missing, no ``auth`` key, a hash format it cannot
    verify), as it reads them at start (the same walk: ``parse_each_route``)."""
    try:
        from .proxy._actions import parse_each_route
        from .proxy._annotations import RouteOptions, parse_route_options
        from .proxy._settings import ProxySettings
    except ImportError:  # pragma: no cover - the proxy is optional for check
        return []
    settings = ProxySettings()
    seen: dict[str, None] = {}

    def parse(route: Any) -> RouteOptions:
        opts = parse_route_options(
            route.annotations, route.path, settings, where=f"Ingress {route.ingress}",
            namespace=getattr(route, "namespace", None),
            secrets=None if res is None else (lambda: res.secrets),
            auth_warn=lambda w: seen.update({w: None}))
        seen.update(dict.fromkeys(opts.warnings))
        return opts

    parse_each_route(table.routes, parse)
    return list(seen)
