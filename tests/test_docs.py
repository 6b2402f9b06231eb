"""The docs are executable: their examples run as written and their claims match the code.

Covers README.md, docs/*.md, ingresslib/proxy/API.md and the examples.

Convention for the ```python blocks of docs/*.md and API.md: every block runs, in order, in one
namespace per page (a page reads like one session), in a temporary folder holding ``deploy/``
(the shop manifests below, the folder the docs load). An HTML comment on the line just above a
block changes that:

- ``<!-- doctest: skip (reason) -->``: a synopsis or fragment, not run;
- ``<!-- doctest: kube (...) -->``: run with ``$KUBECONFIG`` pointing at the fake API server of
  tests/_fake_kube.py (test_cluster_watcher_block_runs).

README.md has no markers (the lead owns it): its ```python blocks run in order in one namespace
in which ``api_app`` and ``site_app`` exist (block 2 mounts them), in the same folder.

Command lines: every ``ingresslib ...`` line of a non-Python fence is parsed by the real argument
parser, once per way of reading its ``[optional]`` and ``a | b`` parts; README's ``check`` and
``explain`` lines are also run.

Code defects found while checking the docs are the ``xfail(strict=True)`` tests at the end.
"""

from __future__ import annotations

import asyncio
import ast
import dataclasses
import datetime
import importlib.util
import inspect
import io
import itertools
import json
import logging
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib import _accesslog, _balance, _config, _kube, _metrics
from ingresslib._cli import build_parser, main as cli_main
from ingresslib.proxy import ProxySettings, RequestRecord
from ingresslib.proxy import _annotations

from _shop import shop_manifests

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = {
    "asgi": ROOT / "docs" / "asgi.md",
    "cluster": ROOT / "docs" / "cluster.md",
    "observability": ROOT / "docs" / "observability.md",
    "router": ROOT / "docs" / "router.md",
    "proxy-api": ROOT / "ingresslib" / "proxy" / "API.md",
}
ALL_DOCS = [README, *DOCS.values()]
PY = sys.executable

#: The ``deploy/`` folder the docs load: README's shop.example.com (canary by header, endpoints
#: that are never connected to), IngressClass ``nginx``.
SHOP = shop_manifests(ingress_class="nginx", addresses=("127.0.0.1", "127.0.0.2"))


# --- reading the docs ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, 1-based
    marker: str | None  # "skip", "kube", ... from <!-- doctest: NAME ... -->


_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*doctest:\s*(\w+)")


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2)
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        mk = _MARKER.match(prev)
        j = i + 1
        while j < len(lines) and not re.match(rf"^{indent}```\s*$", lines[j]):
            j += 1
        body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[i + 1:j]]
        out.append(Block(lang, "\n".join(body) + "\n", i + 1, mk.group(1) if mk else None))
        i = j + 1
    return out


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def one_line(s: str) -> str:
    """Markdown prose with its line breaks folded, for phrase searches."""
    return re.sub(r"\s+", " ", s)


# --- running blocks -------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "shop.yaml").write_text(SHOP, encoding="utf-8")
    # README's explain line names a ConfigMap file as serve --config reads it.
    (tmp_path / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingress-nginx-controller}\n"
        "data: {use-forwarded-headers: 'false'}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _restore_globals() -> Iterator[None]:
    """Doc blocks may register balancers and install the access-log handler (process-wide, as
    an application would): undo both."""
    registry = dict(_balance._REGISTRY)
    access = logging.getLogger("ingresslib.access")
    state = (access.level, access.propagate, access.disabled, list(access.handlers))
    try:
        yield
    finally:
        _balance._REGISTRY.clear()
        _balance._REGISTRY.update(registry)
        access.setLevel(state[0])
        access.propagate, access.disabled = state[1], state[2]
        access.handlers[:] = state[3]
        _accesslog._installed.clear()


def run_block(block: Block, ns: dict[str, Any], where: str) -> None:
    code = compile(block.code, f"{where}:{block.line}", "exec",
                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, ns)  # noqa: S307 - the doc's own example
    if inspect.iscoroutine(result):
        asyncio.run(result)


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.lang == "python"]


def test_markers_are_known() -> None:
    for path in DOCS.values():
        for b in blocks(path):
            assert b.marker in (None, "skip", "kube"), (path, b.line, b.marker)
    assert not any(b.marker for b in blocks(README))


@pytest.mark.parametrize("name", ["asgi", "observability", "router", "proxy-api"])
def test_python_blocks_run(name: str, workdir: Path) -> None:
    path = DOCS[name]
    ns: dict[str, Any] = {"__name__": f"doc_{name}"}
    ran = 0
    out = io.StringIO()
    for b in python_blocks(path):
        if b.marker in ("skip", "kube"):
            continue
        with redirect_stdout(out):
            run_block(b, ns, path.name)
        ran += 1
    assert ran, f"{path.name}: no block ran"


def test_observability_embedding_logs_and_counts(workdir: Path) -> None:
    """The Embedding program's access log line is JSON with the documented keys."""
    (b,) = [b for b in python_blocks(DOCS["observability"]) if "MetricsServer" in b.code]
    out = io.StringIO()
    with redirect_stdout(out):
        run_block(b, {"__name__": "doc"}, "observability.md")
    entry = json.loads(out.getvalue().splitlines()[-1])
    assert list(entry)[:len(_accesslog.FIELDS)] == list(_accesslog.FIELDS)
    assert entry["status"] == 404 and entry["proxy_upstream_name"] == "upstream-default-backend"


def test_readme_python_blocks_run(workdir: Path) -> None:
    async def api_app(scope: Any, receive: Any, send: Any) -> None: ...

    ns: dict[str, Any] = {"__name__": "readme", "api_app": api_app, "site_app": api_app}
    out = io.StringIO()
    bs = python_blocks(README)
    assert len(bs) >= 2
    with redirect_stdout(out):
        for b in bs:
            run_block(b, ns, "README.md")
    # Block 1 on the shop manifests: the match, then the canary the header asks for.
    assert out.getvalue().splitlines() == [
        "shop/shop api 80 /cart Prefix",
        "api-v2 8080 ('127.0.0.2', 8080) True",
    ]
    assert isinstance(ns["app"], ingresslib.IngressASGI)


def test_readme_validation_error_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: one problem per line, in the API server's words, also in ``err.errors``."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "web.yaml").write_text("""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: foo, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
""")
    monkeypatch.chdir(tmp_path)
    claimed = re.search(r"one per\s+line: `([^`]+)`", text(README))
    assert claimed is not None
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.load_manifests("deploy/web.yaml")
    assert str(info.value) == claimed.group(1)
    fields = re.search(r"`FieldError`: ([^)]*)\)", text(README))
    assert fields is not None
    named = re.findall(r"`(\w+)`", fields.group(1))
    err = info.value.errors[0]
    for attr in named:
        assert hasattr(err, attr), attr


def test_readme_bad_request_and_matcher() -> None:
    t = ingresslib.RouteTable.build(ingresslib.parse_manifests(SHOP))
    with pytest.raises(ingresslib.BadRequestError) as info:
        t.match("shop.example.com", "/cart/%2F")
    assert info.value.status_hint == 400
    assert ingresslib.MATCHER in ("cython", "python")
    assert t.match("SHOP.example.com.:8443", "/cart?x=1") is not None  # Host/query rules


# --- command lines --------------------------------------------------------------------------------


def cli_lines(path: Path) -> list[tuple[int, str]]:
    out = []
    for b in blocks(path):
        if b.lang == "python":
            continue
        joined = b.code.replace("\\\n", " ")
        for k, ln in enumerate(joined.splitlines()):
            ln = ln.strip()
            if ln.startswith("ingresslib "):
                out.append((b.line + k + 1, ln))
    return out


def variants(line: str) -> list[list[str]]:
    """argv lists for a documented command line: each ``[...]`` group left out, or put in with
    each of its ``a | b`` alternatives."""
    groups = re.findall(r"\[([^\[\]]*)\]", line)
    skeleton = re.sub(r"\[([^\[\]]*)\]", "{}", line.replace("{", "{{").replace("}", "}}"))
    choices = [[""] + [alt.strip() for alt in g.split(" | ")] for g in groups]
    out = []
    for pick in itertools.product(*choices):
        argv = shlex.split(skeleton.format(*pick), comments=True)
        out.append(argv[1:])
    return out


@pytest.mark.parametrize("path", ALL_DOCS, ids=lambda p: p.name)
def test_documented_command_lines_parse(path: Path) -> None:
    lines = cli_lines(path)
    parser = build_parser()
    for lineno, line in lines:
        for argv in variants(line):
            try:
                parser.parse_args(argv)
            except SystemExit as e:  # argparse's way to refuse (and to answer --version: 0)
                if not (argv in (["--version"], ["--version", "--verbose"]) and e.code == 0):
                    pytest.fail(f"{path.name}:{lineno}: {argv} refused ({e.code})")


def test_some_command_lines_are_found() -> None:
    assert len(cli_lines(README)) >= 5
    assert cli_lines(DOCS["cluster"]) and cli_lines(DOCS["observability"])
    # The parser refuses what it does not know, so the test above can fail.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--enable-metrics=false"])


def test_readme_check_and_explain_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = dict((ln.split()[1], ln) for _, ln in cli_lines(README))
    check = variants(lines["check"])
    assert all(cli_main(argv) == 0 for argv in check)
    capsys.readouterr()
    full = max(variants(lines["explain"]), key=len)  # -H and -o json both given
    assert cli_main(full) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"]["canary"] is True and out["match"]["ingress"] == "shop/shop"
    # "exit 0, or 2 with every error"
    (workdir / "deploy" / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 0}]}\n")
    assert cli_main(check[0]) == 2


def test_demo_manifests_check() -> None:
    assert cli_main(["check", "-f", str(ROOT / "examples" / "demo" / "demo.yaml")]) == 0


# --- ProxySettings, the ConfigMap, annotations (API.md) --------------------------------------------


def _settings_table() -> dict[str, tuple[str, str]]:
    rows = {}
    for ln in text(DOCS["proxy-api"]).splitlines():
        m = re.match(r"\| `(\w+)` \| ([^|]+) \| ([^|]+) \|", ln)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip().strip("`"))
    return rows


def test_settings_table_matches_dataclass() -> None:
    rows = _settings_table()
    fields = {f.name: f for f in dataclasses.fields(ProxySettings)}
    assert set(rows) == set(fields)
    for name, (typ, default) in rows.items():
        f = fields[name]
        assert typ == f.type, name
        value = ast.literal_eval(default)
        assert value == f.default and type(value) is type(f.default), name


def test_configmap_keys_are_the_documented_fields() -> None:
    s = one_line(text(DOCS["proxy-api"]))
    m = re.search(r"ConfigMap keys: every field below is read .*? except these, which are "
                  r"keyword arguments only: (.*?)\. The ConfigMap's `load-balance`", s)
    assert m is not None
    without_key = set(re.findall(r"`(\w+)`", m.group(1)))
    fields = {f.name for f in dataclasses.fields(ProxySettings)}
    keyed = {k.replace("-", "_") for k in _config.KNOWN_KEYS} - (
        {f.name for f in dataclasses.fields(_config.ServerConfig)} - {"settings", "warnings"})
    assert keyed == fields - without_key
    assert "load-balance" in _config.KNOWN_KEYS and "load_balance" not in fields
    # Each key really sets its field.
    cfg = _config.parse_config_data({"keep-alive": "5", "client-header-timeout": "7"})
    assert (cfg.settings.keep_alive, cfg.settings.client_header_timeout) == (5.0, 7.0)


def test_readme_configmap_values_go_cannot_parse_are_errors() -> None:
    for key, value in [("proxy-read-timeout", "60s"), ("proxy-read-timeout", "2.5"),
                       ("hsts", " false"), ("keep-alive-requests", "010"), ("hsts", "")]:
        with pytest.raises(ingresslib.ValidationError) as info:
            _config.parse_config_data({key: value}, object="ConfigMap ns/cm")
        assert f"ConfigMap ns/cm: data.{key}: Invalid value" in str(info.value)


def _route_option_annotations() -> set[str]:
    src = inspect.getsource(_annotations.parse_route_options)
    return set(re.findall(r'get\("([a-z-]+)"', src))


def test_annotation_list_matches_parser() -> None:
    s = text(DOCS["proxy-api"])
    para = s[s.index("- Per-route annotations understood"):]
    listed = set(re.findall(r"`([a-z][a-z-]*)`", para))
    assert listed == _route_option_annotations()


def _code_strings() -> set[str]:
    out: set[str] = set()
    for f in (ROOT / "ingresslib").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.add(node.value)
    return out


def test_named_annotations_exist_in_code() -> None:
    strings = _code_strings()
    known = {s.removeprefix("nginx.ingress.kubernetes.io/") for s in strings}
    named: set[str] = set()
    for path in ALL_DOCS:
        named |= set(re.findall(r"nginx\.ingress\.kubernetes\.io/([a-z][a-z0-9-]*)", text(path)))
    # router.md names the canary, affinity and hashing annotations by their short names.
    named |= set(re.findall(
        r"`((?:canary|session-cookie|affinity|upstream-hash-by)[a-z-]*|load-balance|"
        r"service-upstream)`", text(DOCS["router"])))
    assert named - known == set()
    assert "ingresslib.io/endpoint-weights" in strings


def test_request_record_fields_match() -> None:
    s = text(DOCS["proxy-api"])
    start = s.index("### `RequestRecord`")
    block = s[start:s.index("### Errors", start)]
    named = set(re.findall(r"\b(\w+):\s+(?:int|str|float|bool|tuple)\b", block))
    assert named == {f.name for f in dataclasses.fields(RequestRecord)}


def test_api_objects_import_block_names_exist() -> None:
    (first, *_) = python_blocks(DOCS["proxy-api"])
    assert first.marker is None and "from ingresslib.proxy import" in first.code
    exec(compile(first.code, "API.md", "exec"), {})  # noqa: S102


# --- ASGI --------------------------------------------------------------------------------------------


def test_asgi_options_signature() -> None:
    s = one_line(text(DOCS["asgi"]))
    m = re.search(r"`IngressASGI\((.*?)\)`", s)
    assert m is not None
    parts = []
    for p in inspect.signature(ingresslib.IngressASGI).parameters.values():
        if p.kind is p.KEYWORD_ONLY and "*" not in parts:
            parts.append("*")
        parts.append(p.name + ("" if p.default is p.empty else f"={p.default!r}"))
    assert m.group(1).replace(" ", "") == ",".join(parts)


def test_asgi_example_app() -> None:
    spec = importlib.util.spec_from_file_location("asgi_app_example",
                                                  ROOT / "examples" / "asgi_app.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    async def get(path: str) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: dict[str, Any]) -> None:
            sent.append(m)

        scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
                 "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
                 "headers": [(b"host", b"shop.example.test")]}
        await mod.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    status, body = asyncio.run(get("/api/items"))
    assert status == 200 and json.loads(body)["served_by"] == "shop/api:80"
    status, body = asyncio.run(get("/about"))
    assert status == 200 and b"/about" in body
    # The docstring's `uvicorn examples.asgi_app:app` imports from the project folder.
    import uvicorn.importer

    before = set(sys.modules)
    sys.path.insert(0, str(ROOT))
    try:
        assert isinstance(uvicorn.importer.import_from_string("examples.asgi_app:app"),
                          ingresslib.IngressASGI)
    finally:
        sys.path.remove(str(ROOT))
        for name in set(sys.modules) - before:
            if name == "examples" or name.startswith("examples."):
                del sys.modules[name]


def test_asgi_answers_table() -> None:
    """docs/asgi.md "Answer without an app" and the root_path table."""
    res = ingresslib.parse_manifests("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: shop}
spec:
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /static/, pathType: Prefix, backend: {service: {name: site, port: {name: http}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: site, port: {name: http}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: site, port: {name: http}}}}
      - {path: /none, pathType: Prefix, backend: {service: {name: none, port: {number: 9}}}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {ports: [{port: 80, targetPort: 8080}]}
""")
    seen: list[tuple[str, str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["root_path"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    # The target-port key (8080) is the documented second lookup.
    asgi = ingresslib.IngressASGI(res, backends={"shop/api:8080": app, "shop/site:http": app})

    async def call(method: str, path: str, host: list[bytes] | None = None) -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(m: Any) -> None:
            sent.append(m)

        hosts = [b"shop.example.test"] if host is None else host
        await asgi({"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                    "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
                    "headers": [(b"host", h) for h in hosts]}, receive, send)
        return int(sent[0]["status"])

    async def run() -> None:
        for path, root in [("/api/users", "/api"), ("/static/css/a.css", "/static"),
                           ("/about", ""), ("/exact", "")]:
            assert await call("GET", path) == 200
            assert seen.pop() == (path, root)
        assert await call("GET", "/x", [b"bad host"]) == 400
        assert await call("GET", "/x", [b"a.test", b"b.test"]) == 400
        assert await call("CONNECT", "/x") == 405
        assert await call("TRACE", "/x") == 405
        assert await call("OPTIONS", "*") == 200
        assert await call("GET", "http://shop.example.test/api/x") == 200
        assert await call("GET", "http://other.test/api/x") == 400
        assert await call("GET", "/a/%2F") == 400
        assert await call("GET", "/public/../api/x") == 200 and seen.pop() == ("/api/x", "/api")
        assert await call("GET", "/", [b"nohost.test"]) == 404
        assert await call("GET", "/none") == 503

    asyncio.run(run())
    with pytest.raises(ValueError):
        ingresslib.IngressASGI(res, backends={"api:80": app})


# --- router ----------------------------------------------------------------------------------------


def test_decision_fields_match() -> None:
    s = one_line(text(DOCS["router"]))
    m = re.search(r"`Decision` fields: (.*?)\. ## Modules", s)
    assert m is not None
    named = re.findall(r"(?:^|, )`(\w+)`", m.group(1))
    assert named == [f.name for f in dataclasses.fields(ingresslib.Decision)]


def test_router_synopsis_arguments_exist() -> None:
    (b, *_) = python_blocks(DOCS["router"])
    assert b.marker == "skip"
    params = inspect.signature(ingresslib.Router).parameters
    call = b.code[b.code.index("ingresslib.Router("):b.code.index(")", b.code.index("canary_random"))]
    for name in re.findall(r"(\w+)=", call):
        assert name in params, name
    assert params["load_balance"].default == "round_robin"
    assert params["canary_random"].default is False
    for attr in ("route", "next_endpoint", "observe", "update", "table", "warnings"):
        assert hasattr(ingresslib.Router, attr), attr
    route = inspect.signature(ingresslib.Router.route).parameters
    assert list(route)[1:] == ["method", "host", "path", "headers", "client_ip", "query"]


def test_balancer_options_fields() -> None:
    m = re.search(r"`BalancerOptions\(([^)]*)\)`", text(DOCS["router"]))
    assert m is not None
    assert [x.strip() for x in m.group(1).split(",")] == [
        f.name for f in dataclasses.fields(_balance.BalancerOptions)]


# --- metrics and access log -------------------------------------------------------------------------


def _rendered_families(m: _metrics.Metrics) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", m.render().decode(), re.M))


def _record(**kw: Any) -> RequestRecord:
    base: dict[str, Any] = dict(
        method="GET", host="shop.example.com", path="/api/users/7", query="x=1",
        rule_path="/api", ingress="shop/web", service="web", namespace="shop", canary=False,
        status=200, bytes_in=35, bytes_out=250, upstreams=(("10.0.0.1", 8080),),
        upstream_status=200, upstream_statuses=(200,), start=100.0, upstream_connect=100.001,
        upstream_first_byte=100.02, end=100.030, request_id="abc", client_ip="192.0.2.1",
        http_version="1.1", user_agent="curl/8", referer=None, upstream_response_length=100,
        service_port=80, request_line="GET /api/users/7?x=1 HTTP/1.1", body_bytes_out=100,
        upstream_connect_time=0.001, upstream_header_time=0.019, upstream_response_time=0.028)
    base.update(kw)
    return RequestRecord(**base)


def test_metric_names_and_types_match() -> None:
    s = text(DOCS["observability"])
    documented: dict[str, str] = {}
    per_request = s[s.index("### Per request"):s.index("Label values:")]
    for name, typ in re.findall(r"^\| `(\w+)` \| (\w+)", per_request, re.M):
        documented["nginx_ingress_controller_" + name] = typ
    rest = s[s.index("### Configuration reloads"):s.index("### Differences from ingress-nginx")]
    for name, typ in re.findall(r"^\| `(\w+)` \| (\w+) \|", rest, re.M):
        documented[name] = typ
    for name in re.findall(r"^\| `(ingresslib_watch_\w+)` \|", rest, re.M):
        documented[name] = "counter"
    m = _metrics.Metrics()
    m.observe(_record())
    m.watch_event("Ingress", "ADDED")
    m.watch_error("Ingress")
    m.watch_reconnect("Ingress")
    m.watch_relist("Ingress")
    assert documented == _rendered_families(m)


def test_metric_labels_and_buckets_match() -> None:
    s = one_line(text(DOCS["observability"]))
    m = re.search(r"Labels \(ingress-nginx's `requestTags`\): (.*?)\.", s)
    assert m is not None
    assert tuple(re.findall(r"`(\w+)`", m.group(1))) == _metrics._REQUEST_LABELS
    m = re.search(r"labels `ingress`, `namespace`, `service`, `canary` only", s)
    assert m is not None and _metrics._LATENCY_LABELS == ("ingress", "namespace", "service",
                                                          "canary")
    assert "`host`, `namespace`, `secret_name`" in s
    metrics = _metrics.Metrics()
    metrics.set_certificates([("a.test", "ns/sec", datetime.datetime(2030, 1, 1))])
    assert 'ssl_expire_time_seconds{host="a.test",namespace="ns",secret_name="sec"}' in \
        metrics.render().decode()
    assert _metrics.TIME_BUCKETS[0] == 0.005 and _metrics.TIME_BUCKETS[-1] == 10.0
    assert _metrics.LENGTH_BUCKETS == tuple(float(x) for x in range(10, 101, 10))
    assert _metrics.SIZE_BUCKETS == tuple(float(10 ** i) for i in range(1, 8))
    m = re.search(r"Class `ingresslib.Metrics\((.*?)\)`", s)
    assert m is not None
    params = inspect.signature(_metrics.Metrics).parameters
    for arg in m.group(1).split(", "):
        name, _, default = arg.partition("=")
        if name in ("*", "") or default == "...":
            assert name in ("*", "") or name in params, name
            continue
        assert params[name].default == ast.literal_eval(default), name


def test_access_log_format_and_example() -> None:
    s = text(DOCS["observability"])
    fmt, example = [b.code for b in blocks(DOCS["observability"])
                    if b.lang == "" and ("$remote_addr" in b.code or "192.0.2.1" in b.code)]
    assert tuple(re.findall(r"\$(\w+)", fmt)) == _accesslog.FIELDS
    # The example line is what the code prints for this record (logged 21/Nov/2026 13:25:42 UTC).
    now = datetime.datetime(2026, 11, 21, 13, 25, 42, tzinfo=datetime.timezone.utc).timestamp()
    fields = _accesslog.access_fields(_record(), now=now, tz=datetime.timezone.utc)
    assert _accesslog.format_line(fields) == example.strip()
    m = re.search(r"plus (`host`.*?`canary`)", one_line(s))
    assert m is not None
    extra = re.findall(r"`(\w+)`", m.group(1))
    assert extra == [k for k in fields if k not in _accesslog.FIELDS]


# --- cluster -------------------------------------------------------------------------------------


def test_watch_stats_fields_match() -> None:
    s = one_line(text(DOCS["cluster"]))
    m = re.search(r"The counters live on `ClusterWatcher.stats` \((.*?)\)\. ", s)
    assert m is not None
    named = set(re.findall(r"`(\w+)`", m.group(1)))
    assert named == {f.name for f in dataclasses.fields(_kube.WatchStats)}


def test_cluster_defaults_match() -> None:
    s = one_line(text(DOCS["cluster"]))
    b = _kube.Backoff()
    assert (f"0.8 s doubling to 30 s, ±20 % jitter" in s and
            (b.initial, b.maximum, b.factor, b.jitter) == (0.8, 30.0, 2.0, 0.2))
    assert "reset after a minute" in s and b.reset_after == 60.0
    assert "up to 5 minutes" in s and _kube._RETRY_AFTER_CAP == 300.0
    params = inspect.signature(_kube.ClusterWatcher).parameters
    assert "`debounce` (seconds, 0.1 by default)" in s and params["debounce"].default == 0.1
    assert ("`idle_timeout` (300 s by default) and `list_chunk_size` (500 by default)" in s
            and params["idle_timeout"].default == 300.0
            and params["list_chunk_size"].default == 500)
    m = re.search(r"`Backoff\(([^)]*)\)`", s)
    assert m is not None
    assert [x.strip() for x in m.group(1).split(",")] == [
        f.name for f in dataclasses.fields(_kube.Backoff)]
    options = s[s.index("The options are:"):s.index("### `ResourceStore`")]
    for name in re.findall(r"- `(\w+)`", options):
        assert name in params, name
    assert [k.kind for k in _kube.WATCHED_KINDS] == [
        "Ingress", "IngressClass", "Service", "EndpointSlice", "Secret"]
    store = ingresslib.ResourceStore()
    for attr in ("apply", "replace_all", "snapshot", "generation", "errors", "invalid_total"):
        assert hasattr(store, attr), attr


def test_cluster_watcher_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cluster.md's ClusterWatcher program, against a fake API server on 127.0.0.1."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _fake_kube import FakeKube, kubeconfig_dict
    finally:
        sys.path.remove(str(Path(__file__).parent))
    (b,) = [b for b in python_blocks(DOCS["cluster"]) if b.marker == "kube"]
    loop = asyncio.new_event_loop()
    kube = FakeKube()
    ready = threading.Event()
    url: list[str] = []

    async def serve() -> None:
        url.append(await kube.start())
        kube.put({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                  "metadata": {"name": "web", "namespace": "shop"},
                  "spec": {"defaultBackend": {"service": {"name": "web",
                                                          "port": {"number": 80}}}}})
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(serve(), loop).result(5)
        import yaml

        cfg = tmp_path / "kubeconfig"
        cfg.write_text(yaml.safe_dump(kubeconfig_dict(url[0])))
        monkeypatch.setenv("KUBECONFIG", str(cfg))
        out = io.StringIO()
        with redirect_stdout(out):
            run_block(b, {"__name__": "doc"}, "cluster.md")
        assert out.getvalue() == "5 lists, 1 Ingresses\n"
    finally:
        asyncio.run_coroutine_threadsafe(kube.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# --- examples/sansio_blocking_proxy.py -------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 15.0) -> str:
    """The first stderr line of ``proc`` starting with ``prefix`` (a reader thread, so a silent
    process cannot hang the test)."""
    assert proc.stderr is not None
    stream = proc.stderr
    found: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in stream:
            if line.startswith(prefix):
                found.append(line.strip())
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout) or not found:
        raise AssertionError(f"no {prefix!r} line on stderr")
    return found[0]


def test_sansio_blocking_proxy_example() -> None:
    """The documented command line: a backend on 127.0.0.1, ``--listen 127.0.0.1:0``."""
    backend = socket.create_server(("127.0.0.1", 0))
    port = backend.getsockname()[1]

    def answer() -> None:
        conn, _ = backend.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            time.sleep(0.2)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    proc = subprocess.Popen(
        [PY, str(ROOT / "examples" / "sansio_blocking_proxy.py"), "--backend",
         f"127.0.0.1:{port}", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, "listening on http://127.0.0.1:")
        url = line.split()[-1]
        with urllib.request.urlopen(url + "/any/path", timeout=10) as r:
            assert (r.status, r.read()) == (200, b"hello")
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
        backend.close()
        t.join(5)


# --- ingresslib serve: what the metrics endpoint shows ----------------------------------------------


@pytest.fixture(scope="module")
def served_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    d = tmp_path_factory.mktemp("serve")
    (d / "shop.yaml").write_text(SHOP)
    proc = subprocess.Popen(
        [PY, "-m", "ingresslib", "serve", "-f", str(d), "--listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0", "--reload-interval", "0", "--access-log", "off"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = _read_line(proc, "metrics on ").split()[-1]
        base = url.rsplit("/", 1)[0]
        with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
            health = f"{r.status} {r.read().decode()}"
        # The first configuration's digest is computed once the server listens (off the event
        # loop), so config_hash reads 0 for that moment, as ingress-nginx's before its first
        # reload: the page is read until the first reload is in (bounded).
        deadline = time.monotonic() + 15
        while True:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = r.read().decode()
            if "nginx_ingress_controller_config_hash 0.0" not in body or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        yield {"healthz": health, "metrics": body}
    finally:
        proc.terminate()
        proc.wait(15)
        assert proc.stderr is not None
        proc.stderr.close()


def test_serve_healthz_and_reload_gauge(served_metrics: dict[str, str]) -> None:
    # The fixture found the stderr line the page documents, on the free port it asked for.
    assert ("prints `metrics on http://HOST:PORT/metrics` to stderr" in
            one_line(text(DOCS["observability"])))
    assert served_metrics["healthz"] == "200 ok"  # "`200 ok` while the server is healthy"
    assert re.search(r"^nginx_ingress_controller_config_last_reload_successful 1(\.0)?$",
                     served_metrics["metrics"], re.M)


def test_serve_sets_config_hash(served_metrics: dict[str, str]) -> None:
    m = re.search(r"^nginx_ingress_controller_config_hash (\S+)$", served_metrics["metrics"], re.M)
    assert m is not None and float(m.group(1)) != 0.0


# --- more claims, checked cheaply ---------------------------------------------------------------


def test_paths_and_links_exist() -> None:
    """Every relative link, and every path-like `name` (a .py/.md/.yaml file or a folder/),
    names something in the project (or, on the docs' own example pages, the `deploy/` folder
    their examples load)."""
    for path in ALL_DOCS:
        t = text(path)
        for link in re.findall(r"\]\(([^)#\s]+)\)", t):
            if not link.startswith(("http://", "https://")):
                assert (path.parent / link).exists(), (path.name, link)
        for tok in re.findall(r"`([\w./-]+)`", t):
            if "/" not in tok or tok.startswith(("/", "nginx.", "kubernetes.io")):
                continue
            if not re.search(r"\.(py|md|yaml|pyx|pyi|json)$|/$", tok) or tok == "deploy/":
                continue
            tok = tok.split("::")[0]
            assert any(p.exists() for p in (ROOT / tok, path.parent / tok,
                                             ROOT / "ingresslib" / tok)), (path.name, tok)


def test_readme_layout_names_existing_modules() -> None:
    (layout,) = [b for b in blocks(README) if b.lang == "" and "__init__.py" in b.code]
    pkg = ROOT / "ingresslib"
    files = " ".join(re.split(r"\s{2,}", ln.strip())[0] for ln in layout.code.splitlines())
    names = re.findall(r"(\w+)(\.pyx|\.py|/)(?:/(\.pyi))?", files)
    assert len(names) > 20
    for stem, ext, pyi in names:
        where = ROOT if stem == "ingresslib" else pkg
        assert (where / (stem if ext == "/" else stem + ext)).exists(), stem + ext
        if pyi:
            assert (pkg / (stem + pyi)).exists(), stem + pyi
    # The "where" column of the differences table names modules that exist.
    for where in re.findall(r"\| `(_\w+)`", text(README)):
        assert (pkg / f"{where}.py").exists() or (pkg / "proxy" / f"{where}.py").exists(), where


def test_readme_install_extra_and_script() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "pip install '.[k8s]'" in text(README)
    assert any(d.startswith("lightkube") for d in project["optional-dependencies"]["k8s"])
    assert project["scripts"]["ingresslib"] == "ingresslib._cli:main"
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_asgi_lifespan_claims() -> None:
    """docs/asgi.md "Lifespan": every app once, one shared state, an app that raises on the
    lifespan scope is skipped, one that raises after answering makes the answer failed."""
    res = ingresslib.parse_manifests("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec: {defaultBackend: {service: {name: a, port: {number: 80}}}}
""")
    calls: list[str] = []

    async def good(scope: Any, receive: Any, send: Any) -> None:
        while True:
            m = await receive()
            calls.append(m["type"])
            scope["state"]["good"] = True
            await send({"type": m["type"] + ".complete"})
            if m["type"] == "lifespan.shutdown":
                return

    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("no lifespan here")

    async def bad_shutdown(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise ValueError("boom at shutdown")

    async def run(backends: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        app = ingresslib.IngressASGI(res, backends=backends)
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for t in ("lifespan.startup", "lifespan.shutdown"):
            q.put_nowait({"type": t})
        out: list[Any] = []

        async def send(m: Any) -> None:
            out.append(m)

        state: dict[str, Any] = {}
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}, q.get, send)
        return out, state

    out, state = asyncio.run(run({"default/a": good, "default/b": good, "default/c": no_lifespan}))
    assert out == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert calls == ["lifespan.startup", "lifespan.shutdown"] and state == {"good": True}
    out, _ = asyncio.run(run({"default/a": good, "default/c": bad_shutdown}))
    assert out[1] == {"type": "lifespan.shutdown.failed", "message": "ValueError: boom at shutdown"}


def test_store_claims() -> None:
    """docs/cluster.md "ResourceStore"."""
    store = ingresslib.ResourceStore()
    snake = {"metadata": {"name": "web", "namespace": None, "annotations": {"a_b": "x"}},
             "spec": {"default_backend": {"service": {"name": "web",
                                                      "port": {"number": 80, "name": None}},
                                          "resource": None},
                      "rules": None, "tls": None, "ingress_class_name": None}}
    store.apply("ADDED", snake, kind="Ingress")
    generation = store.generation
    store.apply("MODIFIED", snake, kind="Ingress")  # identical: no change
    assert store.generation == generation
    (ing,) = store.snapshot().ingresses
    assert ing.metadata.namespace == "default" and dict(ing.metadata.annotations) == {"a_b": "x"}
    store.apply("ADDED", {"metadata": {"name": "c"}, "spec": {"controller": "k8s.io/c"}},
                kind="networking.k8s.io/v1/IngressClass")
    assert ("networking.k8s.io/v1/IngressClass", "", "c") in store.keys()
    bad = {"metadata": {"name": "web"}, "spec": {"rules": [{"http": {"paths": [
        {"path": "x", "pathType": "Prefix",
         "backend": {"service": {"name": "w", "port": {"number": 80}}}}]}}]}}
    store.apply("MODIFIED", bad, kind="Ingress")  # invalid: the last valid version stays
    assert store.invalid_total == 1 and store.snapshot().ingresses == (ing,)
    assert isinstance(store.errors[("networking.k8s.io/v1/Ingress", "default", "web")],
                      ingresslib.ValidationError)
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("FOO", {"metadata": {"name": "a"}}, "Ingress"),
        ("ADDED", {"metadata": {}}, "Ingress"),
        ("ADDED", {"metadata": {"name": "a"}}, None)]
    for etype, obj, kind in cases:
        with pytest.raises(ValueError):
            store.apply(etype, obj, kind=kind)
    store.replace_all("Ingress", [])
    assert store.snapshot().ingresses == ()


def test_core_local_answers() -> None:
    """API.md: local answers are text/plain with "<status> <reason>\\n", Date first; OPTIONS *
    gets 200 and allow; start() arms HEAD; an unknown conn_id raises LocalProxyError."""
    from ingresslib.proxy import LocalProxyError, Proxy, SendDownstream, SetTimer, TimerKind

    router = ingresslib.Router(ingresslib.parse_manifests(SHOP))
    conn = Proxy(router, clock=lambda: 0.0).connection(("127.0.0.1", 5555), now=0.0)
    assert conn.start(0.0) == [SetTimer(TimerKind.HEAD, 60.0)]
    (sent, *_) = [a for a in conn.receive_data(b"GET /x HTTP/1.1\r\nHost: no.test\r\n\r\n", 1.0)
                  if isinstance(a, SendDownstream)]
    assert sent.data == (b"HTTP/1.1 404 Not Found\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                         b"content-type: text/plain; charset=utf-8\r\ncontent-length: 14\r\n"
                         b"\r\n404 Not Found\n")
    (sent, *_) = [a for a in conn.receive_data(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 1.0)
                  if isinstance(a, SendDownstream)]
    assert sent.data.startswith(b"HTTP/1.1 200 ") and b"\r\nallow: " in sent.data
    with pytest.raises(LocalProxyError):
        conn.upstream_connected(99, 1.0)
    assert conn.idle and not conn.closed and conn.reading_wanted


def test_metrics_exposition_claims() -> None:
    """observability.md: Go's `le` spelling, status classes, `000`, OTHER, go_names=False,
    prefix, the host rule with and without set_hosts."""
    m = _metrics.Metrics()
    m.observe(_record())
    body = m.render().decode()
    assert 'le="1"' in body and 'le="1e+06"' in body and "_created" not in body
    assert "\nnginx_ingress_controller_requests{" in body
    plain = _metrics.Metrics(go_names=False)
    plain.observe(_record())
    assert "nginx_ingress_controller_requests_total{" in plain.render().decode()
    classes = _metrics.Metrics(report_status_classes=True, prefix="ingresslib")
    classes.observe(_record(status=0, method="BREW"))
    text_ = classes.render().decode()
    assert 'status="0xx"' in text_ and 'method="OTHER"' in text_
    assert "ingresslib_requests{" in text_
    m = _metrics.Metrics()
    m.observe(_record(status=0))
    m.observe(_record(host="evil.test", ingress=None, rule_path=None, service=None))
    assert 'status="000"' in m.render().decode()
    assert 'host=""' in m.render().decode()  # no rule matched: not labelled with its Host
    m.set_hosts({"shop.example.com"})
    m.observe(_record(host="other.test"))  # not a served host: not counted
    assert 'host="other.test"' not in m.render().decode()


def test_access_log_escaping_and_status() -> None:
    fields = _accesslog.access_fields(_record(user_agent='a"b\\\xe9', status=0),
                                      now=0.0, tz=datetime.timezone.utc)
    line = _accesslog.format_line(fields)
    assert '"a\\x22b\\x5C\\xE9"' in line and '" 000 ' in line
    default = _accesslog.access_fields(_record(service=None, namespace=None),
                                       now=0.0, tz=datetime.timezone.utc)
    assert default["proxy_upstream_name"] == "upstream-default-backend"


def _resolve(name: str) -> Any:
    import importlib

    parts = name.split(".")
    if parts[0] == "ingresslib":
        parts = parts[1:]
    obj: Any = ingresslib
    for p in parts:
        if hasattr(obj, "__path__") and not hasattr(obj, p):
            try:
                obj = importlib.import_module(f"{obj.__name__}.{p}")
                continue
            except ImportError:
                return None
        obj = getattr(obj, p, None)
        if obj is None:
            return None
    return obj


def test_inline_call_keywords_exist() -> None:
    """Every `name(..., key=value)` written inline in the docs whose name resolves in
    ingresslib takes that keyword."""
    checked = 0
    for path in ALL_DOCS:
        for name, args in re.findall(r"`([\w.]+)\(([^`()]*)\)`", one_line(text(path))):
            obj = _resolve(name)
            keywords = re.findall(r"(\w+)=", args)
            if obj is None or not callable(obj) or not keywords:
                continue
            params = inspect.signature(obj).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            for k in keywords:
                assert k in params, (path.name, name, k)
            checked += 1
    assert checked >= 5
