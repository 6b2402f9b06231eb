r"""Record how a real nginx routes hostile request targets over ingress-nginx's locations.

For each route table (fixed ones, then random ones from ``--seed``) this writes the nginx
configuration ingress-nginx would generate for it, starts nginx on 127.0.0.1, sends raw request
lines over a socket and records nginx's status and the rule id each location answers with.
tests/test_x48_s36.py replays the recorded corpus (tests/data/x48_nginx_routes.json.gz) against
ingresslib; it does not need nginx, this script does.

Re-record (Debian: ``apt-get install -y nginx-light``)::

    .venv/bin/python benchmarks/nginx_differential.py --seed 36 --random-tables 10 \
        --out tests/data/x48_nginx_routes.json.gz

Which locations ingress-nginx writes, and why each is written so here:

- internal/ingress/controller/controller.go ``updateServerLocations``: a Prefix path ``/foo``
  becomes ``location /foo/`` (``normalizePrefixPath`` appends the ``/``) plus a copy of the
  location as Exact (``location = /foo``), unless an Exact rule already has that path; a path
  already ending in ``/`` keeps it, and its Exact copy is ``location = /foo/`` (so ``/foo``
  is not one of its locations); ``/`` stays ``location /``.
- rootfs/etc/nginx/template/nginx.tmpl ``buildLocation``: Exact is ``location = <path>``,
  Prefix and ImplementationSpecific the bare path, a string-prefix location (no regex: no
  ``use-regex``, no rewrite-target here).
- nginx.tmpl ``buildServerName``: a ``*.w.test`` host is the server name
  ``~^(?<subdomain>[\w-]+)\.w\.test$`` (one first label, ``_`` included).
- controller.go ``createServers``: every server starts with a root location ``/`` for the
  default backend (404 here: the default backend answers 404), which a Prefix ``/`` rule
  replaces; the host-less rules live in the default server ``_`` (``default_server``).
- Each location has ``proxy_pass`` as ingress-nginx's do: nginx then sets ``auto_redirect`` on a
  location ending in ``/`` (ngx_http_proxy_module ``ngx_http_proxy_pass``), the 301 that
  answers ``/foo`` for a lone ``location /foo/``. The ``return 200`` runs in the rewrite phase,
  before the content phase would proxy, so nothing is ever proxied.
- ``large_client_header_buffers 4 8k`` and ``client_header_buffer_size 1k`` are ingress-nginx's
  ConfigMap defaults (a request line over 8k is 414).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: The fixed tables: (host or None, path, pathType). Rule ids are "<table>-r<index>".
FIXED_TABLES: dict[str, list[tuple[str | None, str, str]]] = {
    "fixed1": [
        ("a.test", "/", "Prefix"),
        ("a.test", "/api", "Prefix"),
        ("a.test", "/api/v1", "Exact"),
        ("a.test", "/api/v2/", "Prefix"),
        ("a.test", "/.well-known", "Prefix"),
        ("a.test", "/a.b", "Exact"),
        ("a.test", "/~user", "Prefix"),
        ("a.test", "/caf\u00e9", "Prefix"),
        ("b.test", "/foo/", "Prefix"),
        ("b.test", "/bar", "Exact"),
        ("b.test", "/bar", "Prefix"),
        ("b.test", "/bar/baz", "Prefix"),
        ("*.w.test", "/", "Prefix"),
        ("*.w.test", "/w", "Prefix"),
        (None, "/static", "Prefix"),
        (None, "/x", "Exact"),
        (None, "/admin", "Prefix"),
    ],
    "fixed2": [
        ("c.test", "/api", "Prefix"),
        ("c.test", "/api/private", "Prefix"),
        ("c.test", "/public/", "Exact"),
        ("*.c.test", "/", "Prefix"),
        (None, "/", "Prefix"),
        (None, "/internal", "Prefix"),
    ],
    # Rule paths holding escapes: nginx compares a location as written with the decoded $uri.
    "fixed3": [
        ("e.test", "/", "Prefix"),
        ("e.test", "/sp%41ce", "Prefix"),
        ("e.test", "/a%20b", "Prefix"),
        ("e.test", "/q%3Fx", "Exact"),
        ("e.test", "/caf%C3%A9", "Prefix"),
        ("e.test", "/plus+at@col:on", "Prefix"),
        ("e.test", "/%7Etilde", "Prefix"),
    ],
    # ImplementationSpecific: ingress-nginx writes the bare path (a string-prefix location).
    "fixed4": [
        ("i.test", "/", "Prefix"),
        ("i.test", "/img", "ImplementationSpecific"),
        ("i.test", "/docs/", "ImplementationSpecific"),
        ("i.test", "/img/raw", "Prefix"),
        ("i.test", "/api", "Exact"),
        ("i.test", "/api", "ImplementationSpecific"),
        (None, "/health", "ImplementationSpecific"),
    ],
}

_HOSTS = ["a.test", "b.test", "*.w.test", None]
_SEGMENTS = ["a", "b", "ab", "api", "v1", "x.y", "~u", "A", "a-b", "..a", "a.."]


@dataclass(frozen=True)
class Rule:
    id: str
    host: str | None
    path: str
    path_type: str


@dataclass(frozen=True)
class Probe:
    table: str
    #: The request target as sent (latin-1 text of its bytes).
    target: str
    #: The Host header as sent, or None for none.
    host: str | None
    version: str = "HTTP/1.1"

    def raw(self) -> bytes:
        head = f"GET {self.target} {self.version}\r\n"
        if self.host is not None:
            head += f"Host: {self.host}\r\n"
        return (head + "Connection: close\r\n\r\n").encode("latin-1")


def fixed_tables() -> dict[str, list[Rule]]:
    return {name: [Rule(f"{name}-r{i}", h, p, t) for i, (h, p, t) in enumerate(rows)]
            for name, rows in FIXED_TABLES.items()}


def random_table(name: str, rng: random.Random) -> list[Rule]:
    """A few Exact and Prefix rules over a few hosts; paths from a small alphabet of segments
    so that they nest and share prefixes (the cases precedence decides)."""
    rules: list[Rule] = []
    seen: set[tuple[str | None, str, str]] = set()
    for _ in range(rng.randint(4, 12)):
        host = rng.choice(_HOSTS)
        segs = [rng.choice(_SEGMENTS) for _ in range(rng.randint(1, 3))]
        path = "/" + "/".join(segs) + ("/" if rng.random() < 0.2 else "")
        kind = rng.choice(["Prefix", "Prefix", "Exact"])
        if (host, path, kind) in seen:
            continue
        seen.add((host, path, kind))
        rules.append(Rule(f"{name}-r{len(rules)}", host, path, kind))
    return rules


# ---------------------------------------------------------------- nginx configuration
def _locations(rules: Sequence[Rule]) -> list[tuple[str, str]]:
    """(location argument, rule id) per location, as updateServerLocations / buildLocation
    write them; a later duplicate location is dropped (ingress-nginx keeps the first rule of
    identical paths, the tables here have none)."""
    exact_paths = {r.path for r in rules if r.path_type == "Exact"}
    out: list[tuple[str, str]] = []
    for r in rules:
        if r.path_type == "Exact":
            out.append((f"= {r.path}", r.id))
        elif r.path == "/" or r.path_type == "ImplementationSpecific":
            out.append((r.path, r.id))
        else:
            out.append((r.path if r.path.endswith("/") else r.path + "/", r.id))
            if r.path not in exact_paths:
                out.append((f"= {r.path}", r.id))
    if not any(loc == "/" for loc, _ in out):
        out.append(("/", "default"))
    unique: dict[str, str] = {}
    for loc, rid in out:
        unique.setdefault(loc, rid)
    return list(unique.items())


def _server(names: str, rules: Sequence[Rule], port: int, default: bool) -> str:
    lines = [f"    server {{\n        listen 127.0.0.1:{port}{' default_server' if default else ''};",
             f"        server_name {names};"]
    for loc, rid in _locations(rules):
        status = 404 if rid == "default" else 200
        lines.append(f"        location {loc} {{\n            proxy_pass http://127.0.0.1:9;\n"
                     f"            return {status} \"{rid}\";\n        }}")
    lines.append("    }")
    return "\n".join(lines)


def server_name(host: str) -> str:
    """nginx.tmpl ``buildServerName``: a ``*.`` host becomes a regex of one first label
    (``~^(?<subdomain>[\\w-]+)\\.w\\.test$``), not nginx's own ``*.`` wildcard (any depth)."""
    if not host.startswith("*"):
        return host
    parts = host.replace("*.", "", 1).split(".")
    return "~^(?<subdomain>[\\w-]+)\\." + "\\.".join(parts) + "$"


def nginx_conf(prefix: Path, rules: Sequence[Rule], port: int) -> str:
    by_host: dict[str | None, list[Rule]] = {}
    for r in rules:
        by_host.setdefault(r.host, []).append(r)
    servers = [_server("_", by_host.get(None, []), port, True)]
    servers += [_server(server_name(h), rs, port, False)
                for h, rs in sorted(by_host.items(), key=str) if h is not None]
    return http_conf(prefix, "\n".join(servers) + "\n")


def http_conf(prefix: Path, http_body: str) -> str:
    """A whole nginx.conf under ``prefix`` (one worker, no daemon, temporary files there) whose
    ``http`` block holds ``http_body`` (also benchmarks/nginx_rewrite_differential.py's)."""
    return (f"daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n    access_log off;\n    default_type text/plain;\n"
            f"    client_header_buffer_size 1k;\n    large_client_header_buffers 4 8k;\n"
            f"    client_body_temp_path {prefix}/tmp;\n    proxy_temp_path {prefix}/tmp;\n"
            f"    fastcgi_temp_path {prefix}/tmp;\n    uwsgi_temp_path {prefix}/tmp;\n"
            f"    scgi_temp_path {prefix}/tmp;\n" + http_body + "}\n")


# ---------------------------------------------------------------- hostile requests
_PATH_MUTATIONS = [
    "{p}", "{p}/", "{p}x", "{p}/x", "{p}/x/", "{p}.", "{p}/.", "{p}/..", "{p}/../", "{p}//",
    "/{q}", "//{q}", "{p}/./x", "{p}/../x", "{p}/x/../", "{p}/x/..", "/./{q}", "/x/../{q}",
    "{p}%2e%2e", "{p}/%2e%2e", "{p}/%2E%2e/", "{p}/%2e", "{p}%2F", "{p}%2fx", "{p}/%2F",
    "{p}%00", "{p}/%00", "{p}%20", "{p}/%20", "{p};", "{p};x", "{p}/;", "{p}/..;/x", "{p}/.;/x",
    "{p}\\", "{p}\\x", "{p}/\\..\\x", "{p}%5C", "{pe}", "{pE}", "{p}%41", "{p}%2541",
    "{p}%252e%252e", "{p}%u0061", "{p}%", "{p}%4", "{p}%zz", "{p}\u00e9", "{p}%C3%A9", "{p25}", "{p25}/x",
    "{p}%C3", "{p}%FF", "{p}?q=/..", "{p}#f", "{p}/x#/..", "{P}", "{p}%3B", "{p}%3F",
    "{p}%23", "{p}/%7E", "{p}~", "{p}/.%2e/", "{p}/%2e./", "{p}/...", "{p}/a/../..",
    "{p}/x" + "y" * 60,
]
#: Long targets (past client_header_buffer_size 1k; past the 8k large buffer: 414), for two
#: bases of one host per table only: they are most of the corpus's bytes.
_LONG_MUTATIONS = ["{p}/" + "x" * 1100, "{p}" + "/x" * 600, "{p}" + "/y" * 4200, "{p}/" + "a" * 8100]


def _escape_last_char(path: str, upper: bool) -> str:
    """The path with its last letter percent-encoded (``/api`` -> ``/ap%69``)."""
    for i in range(len(path) - 1, -1, -1):
        if path[i].isalpha() and path[i].isascii():
            hexed = f"%{ord(path[i]):02x}"
            return path[:i] + (hexed.upper() if upper else hexed) + path[i + 1:]
    return path


def path_targets(rules: Sequence[Rule], long: bool) -> Iterator[str]:
    bases = sorted({r.path.rstrip("/") for r in rules} | {"", "/nothing"})
    for base in bases:
        mutations = _PATH_MUTATIONS + (_LONG_MUTATIONS if long and base in bases[:2] else [])
        for m in mutations:
            yield m.format(p=base, q=base.lstrip("/"), pe=_escape_last_char(base, False),
                           pE=_escape_last_char(base, True), P=base.upper() or "/",
                           p25=base.replace("%", "%25"))


def host_forms(host: str) -> list[str]:
    return [host, host.upper(), host + ":80", host + ":8080", host + ".", host.upper() + ".:443"]


def probes(table: str, rules: Sequence[Rule]) -> Iterator[Probe]:
    hosts = sorted({r.host for r in rules if r.host is not None})
    concrete = [h.replace("*", "s") for h in hosts] + ["other.test"]
    for h in concrete:
        group = [r for r in rules if r.host in (h, None)] or rules
        for target in path_targets(group, long=h == concrete[0]):
            yield Probe(table, target, h)
        for form in host_forms(h):
            for rule in rules:
                yield Probe(table, rule.path, form)
        # absolute-form: nginx routes on the request line's host
        for rule in rules:
            yield Probe(table, f"http://{h}{rule.path}", h)
            yield Probe(table, f"http://{h.upper()}:80{rule.path}", h)
            yield Probe(table, f"http://{h}{rule.path}", "other.test")
            yield Probe(table, f"http://{h}{rule.path}/../x", h)
        for url in (f"HTTP://{h.upper()}/", f"https://{h}/", f"http://{h}", f"http://{h}?q",
                    f"http://u@{h}/", f"http://{h}:8080/", f"http://{h}./", f"http://{h}//x",
                    "http://[::1]/", f"http:///{h}/"):
            yield Probe(table, url, h)
    wild = [h[2:] for h in hosts if h.startswith("*.")]
    odd_hosts = ["[::1]", "[::1]:80", "127.0.0.1", "", ".", ":80", "a.test:", "a.test:abc",
                 "a..test", "a_b.test", "a_b.w.test", "-.w.test", "a.b_c.test",
                 "a.test\r\nHost: b.test", "b.test\r\nHost: a.test", "a.test\r\nHost: a.test",
                 " a.test", "a.test ", "a.test\t", "u@a.test", "a.test:80:80", "a.test:080", "A.Test.", "a.test..", "a test", "a/b"]
    odd_hosts += [f"x.y.{w}" for w in wild] + [w for w in wild] + [f"X.{w.upper()}" for w in wild]
    for form in odd_hosts:
        for rule in rules:
            yield Probe(table, rule.path, form)
    for rule in rules:
        yield Probe(table, rule.path, None, "HTTP/1.0")
        yield Probe(table, rule.path, None)


# ---------------------------------------------------------------- running nginx
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def _answer(reply: bytes) -> dict[str, Any]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith(b"HTTP/") else 0
    location = next((urlsplit(ln.split(b":", 1)[1].strip().decode("latin-1")).path
                     for ln in lines[1:] if ln.lower().startswith(b"location:")), None)
    rule = body.decode("latin-1") if status in (200, 404) and b"<" not in body else None
    out: dict[str, Any] = {"status": status, "rule": None if rule == "default" else rule}
    if location is not None:
        out["location"] = location
    return out


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("nginx exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not listen")


def record_table(nginx: str, table: str, rules: Sequence[Rule]) -> list[list[Any]]:
    prefix = Path(tempfile.mkdtemp(prefix="x48-nginx-"))
    (prefix / "tmp").mkdir()
    port = _free_port()
    (prefix / "nginx.conf").write_text(nginx_conf(prefix, rules, port), encoding="utf-8")
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")])
    try:
        _wait_listening(port, proc)
        seen: set[Probe] = set()
        out = []
        for probe in probes(table, rules):
            if probe in seen:
                continue
            seen.add(probe)
            answer = _answer(_send(port, probe.raw()))
            # One compact row per request: [target, host, version, status, rule(, location)].
            row = [probe.target, probe.host, probe.version, answer["status"], answer["rule"]]
            out.append(row + ([answer["location"]] if "location" in answer else []))
        return out
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(prefix, ignore_errors=True)


def write_corpus(path: str | Path, text: str) -> None:
    """``text`` gzipped to ``path`` with no name and mtime 0: a re-record of the same answers is
    byte-identical (also benchmarks/nginx_rewrite_differential.py's)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write(text.encode("utf-8"))


def nginx_version(nginx: str) -> str:
    done = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=True)
    return done.stderr.strip()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--seed", type=int, default=36)
    ap.add_argument("--random-tables", type=int, default=10)
    ap.add_argument("--out", default="tests/data/x48_nginx_routes.json.gz")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    tables = fixed_tables()
    for i in range(args.random_tables):
        tables[f"rand{i}"] = random_table(f"rand{i}", rng)
    corpus: dict[str, Any] = {
        "nginx_version": nginx_version(args.nginx),
        "command": "python benchmarks/nginx_differential.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "tables": {name: [asdict(r) for r in rules] for name, rules in tables.items()},
        "columns": ["target", "host", "version", "status", "rule", "location"],
        "requests": {},
    }
    for name, rules in tables.items():
        corpus["requests"][name] = record_table(args.nginx, name, rules)
    rows = ",\n".join(f"{json.dumps(name)}: [\n" + ",\n".join(json.dumps(r) for r in reqs) + "]"
                      for name, reqs in corpus["requests"].items())
    head = json.dumps({k: v for k, v in corpus.items() if k != "requests"}, indent=1)
    text = head[:-2] + ',\n "requests": {\n' + rows + "}}\n"
    write_corpus(args.out, text)  # (1.8 MB of JSON is 92 KB gzipped)
    total = sum(len(v) for v in corpus["requests"].values())
    print(f"{total} requests over {len(tables)} tables -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
