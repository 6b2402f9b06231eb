"""``ingresslib explain`` and ``ingresslib check``: the route table, told to a person."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from ._errors import ValidationError
from ._resources import Resources
from ._table import RouteTable

__all__ = ["explain_main", "check_main", "split_url", "explain_url", "render_text"]


def split_url(url: str) -> tuple[str, str]:
    """``(host, path-with-query)`` from ``http://host/path``, ``host/path`` or ``/path``.

    The path is kept exactly as written (percent-encoding included): it is what a client sends.
    """
    if url.startswith("/"):
        return "", url
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.netloc.rsplit("@", 1)[-1], path


def explain_url(
    table: RouteTable, url: str, *, res: Resources | None = None, method: str = "GET",
    headers: Sequence[tuple[str, str]] = (), ingress_class: str | None = None,
    controller: str | None = None,
) -> dict[str, Any]:
    """What the table does with ``url``; with ``res``, also which endpoint the router picks."""
    host, path = split_url(url)
    out = {"url": url, **table.explain(host, path)}
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
            if d.endpoint is None:
                out["status"] = 503
                out["reason"] += ("; the backend has no ready endpoint" if d.service is not None else
                                  "; a resource backend is not a Service: nothing to proxy to")
    return out


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
    return "\n".join(lines)


def _backend_text(m: dict[str, Any]) -> str:
    if m.get("service") is not None:
        return f"service {m['namespace']}/{m['service']}:{m['port']}"
    r = m.get("resource") or {}
    return f"resource {r.get('kind')} {m['namespace']}/{r.get('name')}"


def _load(files: Sequence[str], err: TextIO) -> Resources | None:
    from ._load import load_manifests

    try:
        return load_manifests(*files)
    except ValidationError as exc:
        for e in exc.errors:
            print(e, file=err)
        print(f"{len(exc.errors)} error(s)", file=err)
        return None


def _parse_headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for h in raw:
        name, sep, value = h.partition(":")
        if not sep:
            raise SystemExit(f"ingresslib explain: bad header {h!r}: expected NAME:VALUE")
        out.append((name.strip(), value.strip()))
    return out


def explain_main(args: argparse.Namespace) -> int:
    res = _load(args.files, sys.stderr)
    if res is None:
        return 2
    table = RouteTable.build(res, ingress_class=args.ingress_class, controller=args.controller)
    info = explain_url(table, args.url, res=res, method=args.method, headers=_parse_headers(args.headers),
                       ingress_class=args.ingress_class, controller=args.controller)
    if args.output == "json":
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print(render_text(info))
    return 0


def check_main(args: argparse.Namespace) -> int:
    res = _load(args.files, sys.stderr)
    if res is None:
        return 2
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
    proxy_warnings = _proxy_annotation_warnings(table)
    for w in proxy_warnings:
        print(f"warning: {w}", file=sys.stderr)
    n = len(table.served)
    warned = sum(1 for d in diagnostics if d.severity == "warning") + len(proxy_warnings)
    print(f"ok: {len(res.ingresses)} Ingress(es), {n} served, {len(table.routes)} route(s), "
          f"{warned} warning(s)")
    return 0


def _proxy_annotation_warnings(table: RouteTable) -> list[str]:
    """The warnings the proxy would log for invalid annotation values on served routes (with
    the built-in settings: ``check`` has no ``--config``), each once."""
    try:
        from .proxy._annotations import parse_route_options
        from .proxy._settings import ProxySettings
    except ImportError:  # pragma: no cover - the proxy is optional for check
        return []
    settings = ProxySettings()
    seen: dict[str, None] = {}
    for m in table.routes:
        for route in (m,) if m.canary is None else (m, m.canary):
            if route.annotations:
                opts = parse_route_options(route.annotations, route.path, settings,
                                           where=f"Ingress {route.ingress}")
                seen.update(dict.fromkeys(opts.warnings))
    return list(seen)
