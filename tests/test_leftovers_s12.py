"""Session 12's leftovers from earlier reviews, one section per item.

1. ``RouteTable`` serves a table the compiled matcher refuses for its 32-bit indexes (over
   2 GiB of rule paths) with the pure twin, as it does one with a rule path over 64 KiB.
   Before: the compiled matcher's ValueError left ``RouteTable.build`` (and the reload).
3. ``ingresslib --version --verbose`` names the matcher and the balancer picker in use;
   ``--version`` alone prints what it always printed.
4. ``IngressASGI(rewrite_headers=False)`` reads only what routing needs from the headers: it
   no longer builds the backend header list it then dropped.
5. ``serve`` takes the served Ingresses from the table the router just built instead of
   working them out again on the event loop after every reload.
6. tests/test_docs_review.py reads the repository's own programs' flags from their argparse
   calls instead of a hand-kept list.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import test_docs_review
from ingresslib import __version__, _match_py, _matcher, _route_state, _table
from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib._table import RouteTable
from ingresslib.proxy import ProxySettings

from _matchers import MATCH_C, REQUIRE
from _table_oracle import ingress

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def run_child(code: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
    return proc.stdout


# --- 1. the compiled matcher's 2 GiB bound: the pure twin serves the table ----------------------

#: What ``_match.Matcher.__init__`` raises past its 32-bit node indexes / label offsets.
REFUSAL_32_BIT = ("99000 nodes, 2162622000 bytes of rule paths: the compiled matcher's 32-bit "
                  "indexes hold at most 2147483647 of each")


class RefusingMatcher:
    """Stands for the compiled matcher meeting a table over its 32-bit bounds: it raises in
    ``__init__`` as ``_match.Matcher`` does there (before allocating), for any table."""

    max_key_length = 65535
    built = 0

    def __init__(self, groups: Any, default: Any = None) -> None:
        type(self).built += 1
        raise ValueError(REFUSAL_32_BIT)


def _two_hosts() -> Resources:
    return Resources(ingresses=(
        ingress("web", [("a.test", [("/api", "Prefix", "api"), ("/x", "Exact", "x")]),
                        (None, [("/", "Prefix", "any")])], default="fallback"),
    ))


def _answers(table: RouteTable) -> list[Any]:
    out = []
    for host in ("a.test", "A.TEST:80", "b.test", ""):
        for path in ("/api", "/api/v1", "/apiv1", "/x", "/x/", "/", "/%7Ex"):
            m = table.match(host, path)
            out.append(None if m is None else (m.service, m.path, m.path_type, m.host))
    return out


def test_a_table_the_compiled_matcher_refuses_is_served_by_the_pure_twin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: RouteTable fell back only when a rule path was over max_key_length; the 32-bit
    # refusal left RouteTable.build as a ValueError.
    monkeypatch.setattr(_matcher, "Matcher", RefusingMatcher)
    RefusingMatcher.built = 0
    table = RouteTable.build(_two_hosts())
    assert RefusingMatcher.built == 1  # the compiled one was tried first
    assert table.matcher == "python" and isinstance(table._matcher, _match_py.Matcher)
    want = RouteTable.build(_two_hosts(), matcher_class=_match_py.Matcher)
    assert _answers(table) == _answers(want)
    assert _answers(table)[:3] == [("api", "/api", "Prefix", "a.test")] * 2 + [
        ("fallback", None, None, "a.test")]  # the host's default backend: /apiv1 is no /api


def test_a_refusal_the_pure_twin_shares_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fallback is for tables out of the compiled layout's bounds only: input the twin
    # refuses too (two groups for one host: no build makes it) raises the twin's error.
    monkeypatch.setattr(_matcher, "Matcher", RefusingMatcher)
    group: tuple[str, dict[str, Any], dict[str, Any], None] = ("a.test", {}, {}, None)
    with pytest.raises(ValueError, match="duplicate host group"):
        RouteTable([group, group], None, [], [], [])


@pytest.mark.skipif(MATCH_C is None and not REQUIRE, reason="ingresslib._match is not built")
def test_a_table_past_2_gib_of_rule_paths_is_served_by_the_pure_twin() -> None:
    # The real compiled matcher, its real refusal, cheaply: 33,000 hosts with one Exact rule
    # each, all sharing one 65,534-byte path str (Exact keys are the canonical str itself, so
    # the table holds it once), are 2.16 GB of rule paths in the compiled key count and about
    # 100 MB of memory. The child's address space is capped at 1 GiB, so a regression that
    # allocated the 2 GiB would fail with MemoryError instead of loading the machine.
    out = run_child("""
        import os, resource
        if "asan" not in os.environ.get("LD_PRELOAD", ""):
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from _table_oracle import ingress
        from ingresslib._match import Matcher
        from ingresslib._resources import Resources
        from ingresslib._table import RouteTable
        key = "/" + "a" * 65533
        rules = [(f"h{i}.test", [(key, "Exact", f"s{i}")]) for i in range(33_000)]
        res = Resources(ingresses=(ingress("big", rules, default="fallback"),))
        groups = [(f"h{i}.test", {key: i}, {}, None) for i in range(33_000)]
        try:
            Matcher(groups)
        except ValueError as e:
            assert "32-bit" in str(e), e   # the refusal this test is about
        else:
            raise AssertionError("the compiled matcher took it")
        table = RouteTable.build(res)
        assert table.matcher == "python", table.matcher
        assert table.match("h5.test", key).service == "s5"
        assert table.match("H32999.test:80", key).service == "s32999"
        assert table.match("h5.test", key + "/").service == "fallback"   # Exact: no prefix
        assert table.match("nowhere.test", "/").service == "fallback"
        print("ok")
    """)
    assert out.split() == ["ok"]


# --- 3. --version --verbose -----------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--version", "--verbose"], ["--verbose", "--version"]])
def test_version_verbose_names_the_matcher_and_the_picker(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(argv, capsys)
    assert code == 0
    assert out == (f"ingresslib {__version__} (matcher: {_matcher.MATCHER}, "
                   f"picker: {_route_state.COUNTERS})\n")
    # --version alone is unchanged (tests/test_cli_review.py holds its exact format).
    assert _run(["--version"], capsys) == (0, f"ingresslib {__version__}\n")


def test_version_verbose_tells_a_pure_python_run() -> None:
    env = dict(os.environ, INGRESSLIB_NO_EXTENSIONS="1", PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-m", "ingresslib", "--version", "--verbose"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"ingresslib {__version__} (matcher: python, picker: python)\n"


@pytest.mark.skipif(MATCH_C is None and not REQUIRE, reason="the extensions are not built")
def test_version_verbose_tells_a_compiled_run() -> None:
    env = {k: v for k, v in os.environ.items() if k != "INGRESSLIB_NO_EXTENSIONS"}
    p = subprocess.run([sys.executable, "-m", "ingresslib", "--verbose", "--version"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"ingresslib {__version__} (matcher: cython, picker: cython)\n"


def test_verbose_is_no_flag_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    # Only with --version: elsewhere it is an unknown argument, not silently ignored.
    with pytest.raises(SystemExit) as exc:
        main(["--verbose", "check", "-f", "x.yaml"])
    assert exc.value.code == 2


# --- 4. IngressASGI with rewrite_headers=False ------------------------------------------------------

P = "nginx.ingress.kubernetes.io/"

ASGI_MANIFESTS = f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  annotations: {{'{P}upstream-hash-by': '$remote_addr', '{P}proxy-body-size': '64'}}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5]}}]
"""

SETTINGS = [
    ProxySettings(),
    ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",)),
    ProxySettings(enable_real_ip=True, proxy_real_ip_cidr=("127.0.0.0/8",),
                  forwarded_for_header="X-Client-IP"),
    ProxySettings(enable_underscores_in_headers=True, ignore_invalid_headers=False),
]

NAMES = [b"host", b"Host", b"content-length", b"Content-Length", b"transfer-encoding",
         b"connection", b"keep-alive", b"upgrade", b"x-forwarded-for", b"X-Forwarded-For",
         b"x-forwarded-host", b"x-real-ip", b"x-client-ip", b"X-Client-IP", b"x-request-id",
         b"accept", b"x_custom", b"cookie"]
VALUES = [b"shop.test", b"SHOP.test", b"other.test", b"keep-alive", b"close", b"x-custom",
          b"10.0.0.9", b"198.51.100.7, 127.0.0.2", b"203.0.113.5", b"12", b"100", b"abc", b""]


def asgi_adapter(settings: ProxySettings, *, general: bool = False) -> IngressASGI:
    app = IngressASGI(Router(parse_manifests(ASGI_MANIFESTS), seed=1), {"default/web": _ok},
                      settings=settings, rewrite_headers=False)
    if general:
        app._names = None  # every request on the general path (_read_headers)
    return app


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def asgi_call(app: IngressASGI, scope: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """One call driven to its end: (what the client got, per app call: the scope it saw and
    the Decision's service and endpoint)."""
    sent: list[Any] = []
    seen: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def spy(s: Any, r: Any, snd: Any) -> None:
        d = s[DECISION_KEY]
        seen.append(({k: v for k, v in s.items() if k != DECISION_KEY}, d.service, d.endpoint))
        await _ok(s, r, snd)

    app.backends["default/web"] = spy
    coro = app(scope, receive, send)
    try:
        coro.send(None)
    except StopIteration:
        pass
    else:
        raise AssertionError("the call suspended")
    return sent, seen


def asgi_scope(headers: list[tuple[bytes, bytes]], version: str = "1.1",
               client: str = "127.0.0.1") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": version,
            "server": ("127.0.0.1", 8000), "client": (client, 5000), "scheme": "http",
            "method": "GET", "root_path": "", "path": "/a", "raw_path": b"/a",
            "query_string": b"", "headers": headers}


def test_rewrite_headers_off_passes_the_headers_unchanged() -> None:
    headers = [(b"Host", b"shop.test"), (b"Connection", b"keep-alive, x-custom"),
               (b"keep-alive", b"timeout=5"), (b"x-custom", b"1"), (b"X-Forwarded-For", b"1.2.3.4"),
               (b"x-forwarded-host", b"evil.test"), (b"x_custom", b"2"), (b"x-request-id", b"bad id"),
               (b"accept", b"*/*"), (b"accept", b"text/html")]
    for settings in SETTINGS:
        scope = asgi_scope(list(headers))
        sent, seen = asgi_call(asgi_adapter(settings), scope)
        assert sent[0]["status"] == 200
        # The very list the server gave, untouched: same object, same items.
        assert seen[0][0]["headers"] is scope["headers"] and scope["headers"] == headers


@given(headers=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=10),
       settings_index=st.integers(0, len(SETTINGS) - 1),
       host=st.sampled_from([b"shop.test", b"other.test", None]),
       version=st.sampled_from(["1.1", "2", "1.0"]),
       client=st.sampled_from(["127.0.0.1", "192.0.2.1"]))
def test_rewrite_headers_off_routes_as_the_general_path(
        headers: list[tuple[bytes, bytes]], settings_index: int, host: bytes | None,
        version: str, client: str) -> None:
    # The lean scan reads Host (refusing a conflicting or missing one), the declared length
    # (proxy-body-size: 64) and the forwarded-for chain (the client address, which picks the
    # endpoint here: upstream-hash-by $remote_addr) exactly as the general path does.
    settings = SETTINGS[settings_index]
    if host is not None:
        headers = [(b"host", host), *headers]
    scope = asgi_scope(headers, version, client)
    fast = asgi_adapter(settings)
    got = [asgi_call(fast, dict(scope)), asgi_call(fast, dict(scope))]  # cold, then cached names
    want = asgi_call(asgi_adapter(settings, general=True), dict(scope))
    assert got == [want, want]


def _peak_bytes(app: IngressASGI, n_headers: int) -> int:
    """The adapter's peak of allocated memory during one warm call with ``n_headers``
    ordinary headers (names it has already seen)."""
    headers = [(b"host", b"shop.test")] + [(b"x-h%d" % (i % 8), b"v") for i in range(n_headers)]
    asgi_call(app, asgi_scope(list(headers)))  # warm: the name cache, the plan, the path cache
    scope = asgi_scope(list(headers))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        asgi_call(app, scope)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_rewrite_headers_off_builds_no_header_list() -> None:
    # Before: _scan_headers built the backend headers (a new 2-tuple and a list slot per
    # header) that rewrite_headers=False then dropped: the peak grew by 210 KB from 10 to 5,000
    # headers. Many headers, because CPython reuses up to 2,000 freed 2-tuples without asking
    # the allocator (tracemalloc sees only the list then: 1.7 KB for 200 headers). Now the
    # peak does not grow with the number of headers (measured: the same to the byte).
    app = asgi_adapter(ProxySettings())
    assert app._names is not None  # the fast path, not the general one
    few, many = _peak_bytes(app, 10), _peak_bytes(app, 5000)
    assert many - few < 16_000, (few, many)


# --- 5. serve: the served Ingresses come from the table ---------------------------------------------


def _manifest(host: str) -> str:
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""


def test_serve_takes_the_served_ingresses_from_the_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: serve worked the served set out again (served_ingresses: every Ingress, a sort
    # by age) at start-up and on the event loop after every reload, though the router's build
    # had just done it (46-60 ms per reload for 10,000 Ingresses, proxying held meanwhile).
    # Now each build's own answer is used: served_ingresses runs once per table build, from
    # the table only; and the metrics still get the new hosts.
    import ingresslib._metrics
    from ingresslib._serve import Reloader

    assert threading.current_thread() is threading.main_thread()  # serve's SIGTERM handler
    m = tmp_path / "m.yaml"
    m.write_text(_manifest("old.test"))
    callers: list[str] = []
    real_served = _table.served_ingresses

    def counting(*a: Any, **k: Any) -> Any:
        callers.append(sys._getframe(1).f_globals["__name__"])
        return real_served(*a, **k)

    monkeypatch.setattr(_table, "served_ingresses", counting)
    builds: list[int] = []
    real_build = RouteTable._build.__func__  # type: ignore[attr-defined]

    def counting_build(cls: Any, *a: Any) -> Any:
        builds.append(1)
        return real_build(cls, *a)

    monkeypatch.setattr(RouteTable, "_build", classmethod(counting_build))
    hosts: list[set[str]] = []
    real_set_hosts = ingresslib._metrics.Metrics.set_hosts

    def record_hosts(self: Any, h: Any) -> None:
        hosts.append(set(h))
        real_set_hosts(self, h)

    monkeypatch.setattr(ingresslib._metrics.Metrics, "set_hosts", record_hosts)
    results: list[bool | None] = []

    async def run(self: Reloader) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(20, os.kill, os.getpid(), signal.SIGTERM)  # a bound, if all else fails
        m.write_text(_manifest("new.test"))
        st = m.stat()
        os.utime(m, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
        while not results:
            r = await self.check()
            if r is not None:
                results.append(r)
            await asyncio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler: a graceful stop

    monkeypatch.setattr(Reloader, "run", run)
    assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0", "--metrics-listen",
                 "127.0.0.1:0", "--reload-interval", "0.05", "--access-log", "off"]) == 0
    assert results == [True]
    assert len(builds) == 2  # start-up and the reload
    assert callers == ["ingresslib._table"] * len(builds), callers
    assert hosts[0] == {"old.test"} and hosts[-1] == {"new.test"}, hosts


# --- 6. test_docs_review: the repository's programs' flags from their parsers ------------------


def _run_py_parser() -> argparse.ArgumentParser:
    """run.py's real parser: its ``main()`` run up to ``parse_args`` (the module itself only
    defines things), which hands the parser over instead of parsing."""
    spec = importlib.util.spec_from_file_location("_load_run", ROOT / "benchmarks/load/run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Parsed(Exception):
        pass

    def hand_over(self: argparse.ArgumentParser, *a: Any, **k: Any) -> Any:
        raise Parsed(self)

    real = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = hand_over  # type: ignore[method-assign]
    try:
        module.main()
    except Parsed as p:
        return p.args[0]  # type: ignore[no-any-return]
    finally:
        argparse.ArgumentParser.parse_args = real  # type: ignore[method-assign]
    raise AssertionError("run.py's main() parsed no arguments")


def test_the_flags_read_from_run_py_are_its_parser_s() -> None:
    parser = _run_py_parser()
    real = {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}
    assert "--serve-ab" in real and "--json" in real
    assert test_docs_review._argparse_flags(ROOT / "benchmarks/load/run.py") == real


def _docs_check_with_readme(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, doc: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(doc)
    monkeypatch.setattr(test_docs_review, "README", readme)
    test_docs_review.test_documented_flags_exist()


def test_a_doc_may_name_any_run_py_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Before: only the four run.py flags listed by hand passed; --json, --server-only,
    # --chaos and --profile (run.py has them all) failed the docs check.
    flags = sorted(test_docs_review._argparse_flags(ROOT / "benchmarks/load/run.py"))
    _docs_check_with_readme(monkeypatch, tmp_path,
                            f"`python benchmarks/load/run.py {' '.join(flags)}`\n")


def test_a_new_run_py_flag_needs_no_edit_of_the_docs_test(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    doc = "`python benchmarks/load/run.py --warm-up 5`\n"
    with pytest.raises(AssertionError):
        _docs_check_with_readme(monkeypatch, tmp_path, doc)  # no program has --warm-up yet
    run_py = tmp_path / "run.py"
    run_py.write_text((ROOT / "benchmarks/load/run.py").read_text().replace(
        '    ap.add_argument("--json"',
        '    ap.add_argument("--warm-up", type=float, default=0.0)\n    ap.add_argument("--json"'))
    monkeypatch.setattr(test_docs_review, "PROGRAMS",
                        [run_py if p.name == "run.py" else p for p in test_docs_review.PROGRAMS])
    _docs_check_with_readme(monkeypatch, tmp_path, doc)


def test_a_doc_naming_a_flag_nobody_has_still_fails(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    for doc in ("`ingresslib serve --no-such-flag`\n",
                "`python benchmarks/load/run.py --duration 5 --turbo`\n"):
        with pytest.raises(AssertionError):
            _docs_check_with_readme(monkeypatch, tmp_path, doc)
    known = test_docs_review._cli_flags() | test_docs_review._program_flags()
    assert test_docs_review._unknown_flags("a --turbo and a --listen", known) == {"--turbo"}
