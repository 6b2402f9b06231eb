r"""Record what a real nginx sends upstream for ingress-nginx's ``rewrite-target`` locations.

The routing differential (benchmarks/nginx_differential.py, session 36 x48) left rewrites out.
For each table of rules with ``rewrite-target`` (with and without ``use-regex``) this writes the
locations ingress-nginx generates, proxying to a second server block on 127.0.0.1 that answers
the request line it received; it sends hostile request targets and records nginx's status, the
rule whose location took the request, the upstream request-target and ``X-Forwarded-Prefix``.
tests/test_x59_s37.py replays the corpus (tests/data/x59_nginx_rewrites.json.gz) against
ingresslib's proxy core; it does not need nginx, this script does. The helpers (server names,
sockets, nginx's start) are nginx_differential.py's, imported.

Re-record (Debian: ``apt-get install -y nginx-light``)::

    .venv/bin/python benchmarks/nginx_rewrite_differential.py \
        --out tests/data/x59_nginx_rewrites.json.gz

What ingress-nginx writes, and why each is written so here:

- controller/location.go ``updateServerLocations``: a Prefix path (not ``/``, not ending in
  ``/``) becomes ``PATH/`` plus an exact twin ``PATH`` (unless an Exact rule has it), "only
  Prefix locations", and "locations with rewrite or using regular expressions are not modified"
  (``needsRewrite``: a target other than the rule path; or ``use-regex``).
- template.go ``enforceRegexModifier``: when one location of the server has ``needsRewrite``
  (on the location's path, after the step above) or ``use-regex``, ``buildLocation`` writes
  every location of the server as ``~* "^PATH"`` (Exact ones too); else ``= PATH`` for Exact,
  the bare path otherwise.
- controller.go ``getBackendServers`` sorts a server's locations by path, descending, then by
  length, longest first (stable): nginx tries regex locations in that order, the first wins.
  The root location ``/`` (the default backend, 404 here) is one of them.
- template.go ``buildProxyPass``: "if path == location.Rewrite.Target { return defProxyPass }"
  (the location's path); else, with a target, ``rewrite "(?i)PATH" TARGET break;``, then
  ``proxy_set_header X-Forwarded-Prefix "VALUE";`` when the ``x-forwarded-prefix`` annotation
  is set, then the ``proxy_pass``. Without a target: the ``proxy_pass`` alone.
- The upstream server block answers ``$request_uri`` (the request line's target, the bytes
  nginx sent) and ``$http_x_forwarded_prefix``; each location tells it its rule by a header of
  its own (``X-Rule``), which changes nothing of the request-target.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit


def _load_routing_recorder() -> ModuleType:
    """benchmarks/nginx_differential.py (stdlib only), whose helpers this reuses."""
    path = Path(__file__).with_name("nginx_differential.py")
    spec = importlib.util.spec_from_file_location("_x48_nginx_differential", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_ROUTING = _load_routing_recorder()
Probe = _ROUTING.Probe

HOST = "r.test"

#: (path, pathType, rewrite-target or None, use-regex, x-forwarded-prefix or None). One
#: Ingress per rule (its annotations its own); rule ids "<table>-r<index>".
FIXED_TABLES: dict[str, list[tuple[str, str, str | None, bool, str | None]]] = {
    # use-regex paths with capture groups, ImplementationSpecific as the docs write them.
    "regex": [
        ("/api(/|$)(.*)", "ImplementationSpecific", "/$2", True, "/api"),
        ("/files/(.)(.*)", "ImplementationSpecific", "/x/$1/$2", True, None),
        ("/q/([^/]*)/(.*)", "ImplementationSpecific", "/$1?a=$2", True, None),
        ("/caf\u00e9/(.*)", "ImplementationSpecific", "/$1", True, "/caf\u00e9"),
        ("/sp/(.*)", "ImplementationSpecific", "/a%20b/$1", True, None),
        ("/t/(.*)", "ImplementationSpecific", "/~u/$1", True, None),
        ("/same", "ImplementationSpecific", "/same", True, "/same"),
        ("/plain", "Prefix", None, False, None),
        ("/ex", "Exact", None, False, None),
        ("/u/(.*)", "ImplementationSpecific", "/\u00e9/$1?k=%20$1", True, "/p re"),
    ],
    # use-regex on paths a Prefix rule routes literally too: ingresslib routes them.
    "regex_prefix": [
        ("/api", "Prefix", "/v2/$1", True, "/api"),
        ("/a.b", "Prefix", "/dot", True, None),
        ("/keep", "Prefix", "/keep", True, "/keep"),
        ("/docs/", "Prefix", "/d/", True, None),
        ("/", "Prefix", None, False, None),
    ],
    # No use-regex: the rule path is still the rewrite's regex in nginx.
    "literal": [
        ("/api", "Prefix", "/", False, "/api"),
        ("/v1", "Prefix", "/v2/$1", False, None),
        ("/foo", "Prefix", "/foo", False, "/foo"),
        ("/docs/", "Prefix", "/docs/", False, "/docs"),
        ("/sp", "Prefix", "/a%20b", False, None),
        ("/exact", "Exact", "/e", False, "/exact"),
        ("/impl", "ImplementationSpecific", "/i", False, None),
        ("/caf\u00e9", "Prefix", "/c", False, None),
        ("/search", "Prefix", "/s?q=1", False, None),
        ("/drop", "Prefix", "/d?", False, None),
        ("/other", "Prefix", None, False, None),
        ("/tilde", "Prefix", "/%7Euser", False, None),
    ],
    # Only a target equal to the rule path (x54): ``PATH/`` rewrites, its twin does not.
    "same": [
        ("/foo", "Prefix", "/foo", False, "/foo"),
        ("/bar/", "Prefix", "/bar/", False, "/bar"),
        ("/baz", "Exact", "/baz", False, None),
        ("/", "Prefix", "/", False, None),
    ],
}


@dataclass(frozen=True)
class RewriteRule:
    id: str
    path: str
    path_type: str
    rewrite_target: str | None
    use_regex: bool
    x_forwarded_prefix: str | None


@dataclass(frozen=True)
class Location:
    """One location ingress-nginx writes: its path and type after ``updateServerLocations``,
    and the rule (with its annotations) it serves; ``rule`` None: the default backend."""
    path: str
    path_type: str
    rule: RewriteRule | None


def fixed_tables() -> dict[str, list[RewriteRule]]:
    return {name: [RewriteRule(f"{name}-r{i}", *row) for i, row in enumerate(rows)]
            for name, rows in FIXED_TABLES.items()}


# ---------------------------------------------------------------- nginx configuration
def _needs_rewrite(loc: Location) -> bool:
    """location.go ``needsRewrite``: "len(Target) > 0 && Target != location.Path"."""
    target = loc.rule.rewrite_target if loc.rule else None
    return bool(target) and target != loc.path


def _is_regex(loc: Location) -> bool:
    return loc.rule is not None and (loc.rule.use_regex or _needs_rewrite(loc))


def locations(rules: Sequence[RewriteRule]) -> list[Location]:
    """controller/location.go ``updateServerLocations``, then controller.go's sort."""
    exact_paths = {r.path for r in rules if r.path_type == "Exact"}
    out: list[Location] = []
    for r in rules:
        loc = Location(r.path, r.path_type, r)
        if (r.path == "/" or r.path_type != "Prefix" or _is_regex(loc)
                or r.path.endswith("/")):
            out.append(loc)
            continue
        out.append(Location(r.path + "/", "Prefix", r))
        if r.path not in exact_paths:
            out.append(Location(r.path, "Exact", r))
    if not any(loc.path == "/" for loc in out):
        out.append(Location("/", "Prefix", None))
    unique: dict[tuple[str, str], Location] = {}
    for loc in out:  # a later location of the same path and type is dropped
        unique.setdefault((loc.path, "=" if loc.path_type == "Exact" else ""), loc)
    ordered = sorted(unique.values(), key=lambda lc: lc.path, reverse=True)
    return sorted(ordered, key=lambda lc: len(lc.path), reverse=True)


def _location_block(loc: Location, regex_server: bool) -> str:
    """nginx.tmpl's location: ``buildLocation`` and ``buildProxyPass``."""
    if regex_server:
        head = f'~* "^{loc.path}"'
    elif loc.path_type == "Exact":
        head = f"= {loc.path}"
    else:
        head = loc.path
    if loc.rule is None:
        return f'        location {head} {{\n            return 404 "default";\n        }}'
    body = [f'proxy_set_header X-Rule "{loc.rule.id}";']
    target = loc.rule.rewrite_target
    if target and target != loc.path:
        body.append(f'rewrite "(?i){loc.path}" {target} break;')
        if loc.rule.x_forwarded_prefix:
            body.append(f'proxy_set_header X-Forwarded-Prefix "{loc.rule.x_forwarded_prefix}";')
    body.append("proxy_pass http://upstream_balancer;")
    inner = "".join(f"            {line}\n" for line in body)
    return f"        location {head} {{\n{inner}        }}"


def nginx_conf(prefix: Path, rules: Sequence[RewriteRule], port: int, upstream_port: int) -> str:
    locs = locations(rules)
    regex_server = any(_is_regex(loc) for loc in locs)
    blocks = "\n".join(_location_block(loc, regex_server) for loc in locs)
    conf: str = _ROUTING.http_conf(prefix, (
            f"    upstream upstream_balancer {{ server 127.0.0.1:{upstream_port}; }}\n"
            f"    server {{\n        listen 127.0.0.1:{upstream_port};\n"
            f"        location / {{\n            return 200 "
            f'"$http_x_rule|$request_uri|$http_x_forwarded_prefix";\n        }}\n    }}\n'
            f"    server {{\n        listen 127.0.0.1:{port} default_server;\n"
            f"        server_name {HOST};\n{blocks}\n    }}\n"))
    return conf


# ---------------------------------------------------------------- hostile requests
#: Appended to each base: escapes of every kind, dot segments, arguments.
_SUFFIXES = [
    "", "/", "x", "/x", "/x/y", "/x/", "/A", "/X/Y", "/%41", "/%61&b", "/a+b", "/a;b", "/x&y",
    "/x=y", "/a%20b", "/%20", "/%2F", "/a%2Fb", "/%25", "/%2525", "/%252F", "/%7E", "/~",
    "/%7Eu", "/%3B", "/%3F", "/a%3Fb", "/%23", "/%2B", "/\xc3\xa9", "/%C3%A9", "/%c3%a9",
    "/%C3", "/%FF", "/./x", "/../x", "/x/..", "/x/../y", "/%2e%2e/x", "/%2E/x", "//x", "/x//y",
    "/x?", "/x?y=1", "/x?a=%20&b=+", "/x%3Fy?z", "/x?%2F", "/!$'()*,:@", "/%5B%5D%3A%40",
    "/%21%24%26%27%28%29%2A%2B%2C%3B%3D", "/%22%3C%3E%5E%60%7B%7C%7D", "/x%00", "/x%0A",
    "?", "?q=1", "?q=a+b&c=%20", "/a/b/c/d", "%2Fx", "/\xff",
]


def _literal_base(path: str) -> str:
    """The part of a rule path before its first regex syntax (a request reaching it)."""
    for i, c in enumerate(path):
        if c in "()[]{}*+?|^$\\":
            return path[:i]
    return path


def targets(rules: Sequence[RewriteRule]) -> Iterator[str]:
    bases: set[str] = {""}
    for r in rules:
        base = _literal_base(r.path).rstrip("/")
        bases |= {base, base.upper(), base + "/x"}
    for base in sorted(bases):
        # a rule path's non-ASCII characters go as their UTF-8 bytes (latin-1 text here)
        raw_base = base.encode("utf-8").decode("latin-1")
        for suffix in _SUFFIXES:
            target = raw_base + suffix
            yield target if target.startswith("/") else "/" + target


# ---------------------------------------------------------------- running nginx
def _answer(reply: bytes) -> list[Any]:
    """[status, rule, upstream target, x-forwarded-prefix, location]: the upstream's three
    fields when nginx proxied the request, else None for each (latin-1 text of the bytes)."""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith(b"HTTP/") else 0
    location = next((urlsplit(ln.split(b":", 1)[1].strip().decode("latin-1")).path
                     for ln in lines[1:] if ln.lower().startswith(b"location:")), None)
    rule = upstream = prefix = None
    if status == 200 and body.count(b"|") >= 2:
        rule_b, rest = body.split(b"|", 1)
        upstream_b, prefix_b = rest.rsplit(b"|", 1)
        rule, upstream = rule_b.decode("latin-1"), upstream_b.decode("latin-1")
        prefix = prefix_b.decode("latin-1") or None
    return [status, rule, upstream, prefix, location]


def record_table(nginx: str, rules: Sequence[RewriteRule]) -> list[list[Any]]:
    prefix = Path(tempfile.mkdtemp(prefix="x59-nginx-"))
    (prefix / "tmp").mkdir()
    port, upstream_port = _ROUTING._free_port(), _ROUTING._free_port()
    conf = nginx_conf(prefix, rules, port, upstream_port)
    (prefix / "nginx.conf").write_text(conf, encoding="utf-8")
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")])
    try:
        _ROUTING._wait_listening(port, proc)
        out: list[list[Any]] = []
        seen: set[str] = set()
        for target in targets(rules):
            if target in seen:
                continue
            seen.add(target)
            # One row per request: [target, status, rule, upstream target, prefix, location].
            out.append([target, *_answer(_ROUTING._send(port, Probe("", target, HOST).raw()))])
        return out
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(prefix, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--out", default="tests/data/x59_nginx_rewrites.json.gz")
    ap.add_argument("--show-conf", help="print the configuration of this table and stop")
    args = ap.parse_args(argv)
    tables = fixed_tables()
    if args.show_conf:
        print(nginx_conf(Path("/tmp/x"), tables[args.show_conf], 1, 2))
        return 0
    corpus: dict[str, Any] = {
        "nginx_version": _ROUTING.nginx_version(args.nginx),
        "command": "python benchmarks/nginx_rewrite_differential.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "host": HOST,
        "tables": {name: [asdict(r) for r in rules] for name, rules in tables.items()},
        "columns": ["target", "status", "rule", "upstream", "x_forwarded_prefix", "location"],
        "requests": {name: record_table(args.nginx, rules) for name, rules in tables.items()},
    }
    text = json.dumps(corpus, indent=0, ensure_ascii=True) + "\n"
    _ROUTING.write_corpus(args.out, text)
    total = sum(len(v) for v in corpus["requests"].values())
    print(f"{total} requests over {len(tables)} tables -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
