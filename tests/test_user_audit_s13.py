"""Session 13's new-user audit: what a user who embeds ingresslib from the docs alone runs into.

Each test is a place where a user following README.md, docs/asgi.md, docs/router.md,
docs/recipes.md or examples/ got stuck or misled (a hang with no message, a bare traceback, a
claim the code does not keep). The doc fixes are checked here against the code; the code defects
found are the tests at the end (each failed before its fix).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ingresslib

from _shop import shop_manifests

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
PY = sys.executable

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


def one_line(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a page, in order (markers ignored: callers pick by content)."""
    out: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not re.match(rf"^{m.group(1)}```\s*$", lines[j]):
            j += 1
        if m.group(2) == "python":
            out.append(textwrap.dedent("\n".join(lines[i + 1:j])) + "\n")
        i = j + 1
    return out


SHOP = shop_manifests()


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def _asgi_get(app: Any, path: str, host: str = "shop.example.com") -> int:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "client": ("192.0.2.1", 1), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", host.encode())]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


# --- docs/asgi.md "Live updates": a watcher that cannot start must not start a silent server ----


def _live_update_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """docs/asgi.md's two "Live updates" blocks, run as a user pastes them into a module."""
    blocks = [b for b in python_blocks(DOCS / "asgi.md")
              if "ClusterWatcher(" in b or "app_with_watch" in b]
    assert len(blocks) == 2, "the Live updates blocks moved"
    monkeypatch.chdir(tmp_path)
    ns: dict[str, Any] = {"__name__": "user_module", "api_app": _noop_app}
    for b in blocks:
        exec(compile(b, "asgi.md", "exec"), ns)  # noqa: S102 - the doc's own example
    return ns


def _lifespan(app: Any) -> list[dict[str, Any]]:
    """The server's side of a lifespan: startup, then shutdown once startup completed."""
    async def go() -> list[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        out: list[dict[str, Any]] = []

        async def send(m: dict[str, Any]) -> None:
            out.append(m)
            if m["type"] == "lifespan.startup.complete":
                q.put_nowait({"type": "lifespan.shutdown"})

        q.put_nowait({"type": "lifespan.startup"})
        await asyncio.wait_for(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                    "state": {}}, q.get, send), 10)
        return out

    return asyncio.run(go())


def test_live_update_wrapper_fails_startup_without_lightkube(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without lightkube, the page's wrapper used to let the server start (every request 404)
    and raised ModuleNotFoundError only at shutdown, which uvicorn then logged as "ASGI
    'lifespan' protocol appears unsupported": the user never saw why. It must answer
    ``lifespan.startup.failed`` with the reason instead."""
    ns = _live_update_namespace(tmp_path, monkeypatch)

    class NoLightkube:
        async def run(self, stop: asyncio.Event) -> None:
            raise ModuleNotFoundError("No module named 'lightkube'")

    ns["watcher"] = NoLightkube()
    out = _lifespan(ns["app_with_watch"])
    assert [m["type"] for m in out] == ["lifespan.startup.failed"]
    assert "lightkube" in out[0]["message"]


def test_live_update_wrapper_fails_startup_on_a_missing_kubeconfig(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ClusterWatcher with a kubeconfig that does not exist: the server's startup fails
    with lightkube's reason, instead of a server that serves 404 with no word about it."""
    pytest.importorskip("lightkube")  # the k8s extra: part of the test dependencies
    ns = _live_update_namespace(tmp_path, monkeypatch)
    ns["watcher"] = ingresslib.ClusterWatcher(ns["app"].update,
                                              kubeconfig=tmp_path / "no-such-kubeconfig")
    out = _lifespan(ns["app_with_watch"])
    assert [m["type"] for m in out] == ["lifespan.startup.failed"]
    assert "no-such-kubeconfig" in out[0]["message"]


def test_live_update_wrapper_still_serves_while_the_watcher_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check does not stop a watcher that is connecting: startup completes, the watcher
    runs until shutdown and is stopped then."""
    ns = _live_update_namespace(tmp_path, monkeypatch)
    events: list[str] = []

    class Connecting:
        async def run(self, stop: asyncio.Event) -> None:
            events.append("watch")
            await stop.wait()
            events.append("stopped")

    ns["watcher"] = Connecting()
    out = _lifespan(ns["app_with_watch"])
    assert [m["type"] for m in out] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["watch", "stopped"]


def test_asgi_page_says_clusterwatcher_needs_the_k8s_extra() -> None:
    s = one_line((DOCS / "asgi.md").read_text(encoding="utf-8"))
    assert "`ClusterWatcher` needs the `k8s` extra: `pip install '.[k8s]'` from a checkout" in s


# --- examples/asgi_app.py: runs outside the repository, says what it needs ---------------------


def test_asgi_example_without_uvicorn_says_how_to_get_it(tmp_path: Path) -> None:
    """uvicorn is no dependency of ingresslib: a user who runs the example got a bare
    ModuleNotFoundError traceback. It must say what to install, without a traceback."""
    copy = tmp_path / "asgi_app.py"  # a user's copy, outside the repository
    copy.write_text((EXAMPLES / "asgi_app.py").read_text(encoding="utf-8"), encoding="utf-8")
    code = ("import runpy, sys; sys.modules['uvicorn'] = None; sys.argv = ['asgi_app.py']; "
            f"runpy.run_path({str(copy)!r}, run_name='__main__')")
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert p.returncode != 0
    assert "pip install uvicorn" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_asgi_example_docstring_command_works_from_a_copy(tmp_path: Path) -> None:
    """The docstring's ``uvicorn asgi_app:app`` (from the folder holding the file) imports the
    app from a copy anywhere: the example needs nothing else of the repository."""
    uvicorn_importer = pytest.importorskip("uvicorn.importer")
    text = (EXAMPLES / "asgi_app.py").read_text(encoding="utf-8")
    assert "uvicorn asgi_app:app --host 127.0.0.1 --port 8000" in text
    assert "pip install uvicorn" in text.split('"""')[1]
    (tmp_path / "asgi_app.py").write_text(text, encoding="utf-8")
    before = set(sys.modules)
    sys.path.insert(0, str(tmp_path))
    try:
        app = uvicorn_importer.import_from_string("asgi_app:app")
        assert isinstance(app, ingresslib.IngressASGI)
        assert _asgi_get(app, "/api/items", host="shop.example.test") == 200
    finally:
        sys.path.remove(str(tmp_path))
        for name in set(sys.modules) - before:
            if name == "asgi_app":
                del sys.modules[name]


def test_asgi_page_says_where_the_example_is_and_what_it_needs() -> None:
    s = one_line((DOCS / "asgi.md").read_text(encoding="utf-8"))
    assert "(in the source distribution and the repository; a wheel installs only the package)" in s
    assert "It needs an ASGI server: `pip install uvicorn`." in s


# --- docs/asgi.md: a mistyped backend key answers 503; the page says how to find the right one ---


def test_backend_keys_are_what_explain_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The page's advice: the keys are the backends as ``explain`` prints them, and a key that
    names no backend is accepted and its requests answer 503."""
    s = one_line((DOCS / "asgi.md").read_text(encoding="utf-8"))
    assert ("The keys of `backends` are the backends as `ingresslib explain -f deploy/ URL` "
            "prints them (`backend service shop/api:80`).") in s
    assert "mounted set logs nothing. Compare the keys with `explain`'s output." in s
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "shop.yaml").write_text(SHOP, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    from ingresslib._cli import main as cli_main

    assert cli_main(["explain", "-f", "deploy/", "http://shop.example.com/cart"]) == 0
    assert "backend service shop/api:80" in capsys.readouterr().out
    res = ingresslib.load_manifests("deploy/")
    assert _asgi_get(ingresslib.IngressASGI(res, backends={"shop/api:80": _noop_app}),
                     "/cart") == 200
    assert _asgi_get(ingresslib.IngressASGI(res, backends={"shop/apii:80": _noop_app}),
                     "/cart") == 503


# --- docs/router.md: what a Decision holds for a resource backend --------------------------------


def test_router_page_decision_fields_for_a_resource_backend() -> None:
    """router.md listed ``backend`` as ``"ns/service:port"`` with no None: a user formatting it
    (``decision.backend.encode()``) crashed on a resource backend, and mypy --strict refused."""
    s = one_line((DOCS / "router.md").read_text(encoding="utf-8"))
    assert "`service` (None for a `resource` backend)" in s
    assert "`backend` (`\"ns/service:port\"`, None for a `resource` backend)" in s
    assert "`route` returns None when no rule and no default backend matched (404)" in s
    res = ingresslib.parse_manifests("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bucket}
spec:
  defaultBackend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static}}
""")
    d = ingresslib.Router(res).route("GET", "a.example.com", "/")
    assert d is not None and d.service is None and d.backend is None and d.endpoint is None


def test_router_page_synopsis_names_session_cookie() -> None:
    """The retry section relies on ``session_cookie(decision, endpoint)``; the synopsis of the
    Router's methods left it out."""
    synopsis = python_blocks(DOCS / "router.md")[0]
    assert "router.session_cookie(d, endpoint)" in synopsis
    assert callable(getattr(ingresslib.Router, "session_cookie"))


# --- docs/recipes.md: the header forms route() takes ---------------------------------------------


def test_recipes_route_header_forms(tmp_path: Path) -> None:
    """recipes.md said ``route`` takes "lower-case (name, value) byte pairs", so users converted
    headers they did not need to; every form the page now names opts in to the canary."""
    s = one_line((DOCS / "recipes.md").read_text(encoding="utf-8"))
    assert ("takes the headers as a mapping or as `(name, value)` pairs, `str` or `bytes`, "
            "names in any case (`{\"X-Canary\": \"always\"}` works too)") in s
    router = ingresslib.Router(ingresslib.parse_manifests(SHOP))
    for headers in ({"X-Canary": "always"}, [("X-Canary", "always")],
                    [(b"X-CANARY", b"always")], [(b"x-canary", b"always")]):
        d = router.route("GET", "shop.example.com", "/cart", headers, "192.0.2.10")
        assert d is not None and d.canary, headers


# --- examples/deploy/: the namespace-scoped advice in its comments ------------------------------


def test_deploy_comments_do_not_say_a_role_alone_suffices() -> None:
    """deployment.yaml said ``--namespace=shop`` "(then a Role suffices)" and rbac.yaml "bind a
    Role (not this ClusterRole) in NS only": IngressClasses are cluster-scoped, a Role cannot
    grant them, and without them the first table never comes (tests/test_kube_s13.py runs the
    watcher under docs/cluster.md's grants). Both comments now name the ClusterRole it needs."""
    from ingresslib._kube import WATCHED_KINDS

    assert [k.namespaced for k in WATCHED_KINDS if k.kind == "IngressClass"] == [False]
    for name in ("deployment.yaml", "rbac.yaml"):
        s = one_line((EXAMPLES / "deploy" / name).read_text(encoding="utf-8").replace("#", " "))
        assert "Role suffices" not in s, name
        assert re.search(r"ClusterRole for `?ingressclasses", s), name


# --- docs/recipes.md "Force HTTPS": a spec.tls host redirects only once HTTPS is served ---------


TLS_SHOP = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: shop}
spec:
  tls:
  - {hosts: [shop.example.test], secretName: shop-tls}
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: shop}
spec: {ports: [{port: 80, targetPort: PORT}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: shop-1, namespace: shop, labels: {kubernetes.io/service-name: shop}}
addressType: IPv4
ports: [{port: PORT}]
endpoints: [{addresses: [127.0.0.1]}]
"""


def _serve_status(manifest: Path, *extra: str) -> int:
    """One plain-http GET through ``ingresslib serve`` on 127.0.0.1; the status it answers."""
    import http.client
    import threading

    proc = subprocess.Popen([PY, "-m", "ingresslib", "serve", "-f", str(manifest),
                             "--listen", "127.0.0.1:0", "--access-log", "off", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        found: list[str] = []
        done = threading.Event()

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith("listening on http://"):
                    found.append(line.strip())
                    break
            done.set()

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(30) and found, "serve did not start"
        port = int(found[0].rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/docs/", headers={"Host": "shop.example.test"})
        status = conn.getresponse().status
        conn.close()
        return status
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def test_force_https_recipe_says_redirects_need_an_https_listener(tmp_path: Path) -> None:
    """recipes.md said "A host with `spec.tls` is redirected by default": ``serve`` without
    ``--tls-listen`` proxies it (there is no https to send the client to). The page now says
    when; the backend here is a closed port on 127.0.0.1, so "proxied" reads as 502."""
    s = one_line((DOCS / "recipes.md").read_text(encoding="utf-8"))
    assert ("redirected by default (`ssl-redirect`) once ingresslib also serves HTTPS: "
            "`ingresslib serve` with `--tls-listen`") in s
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(TLS_SHOP.replace("PORT", str(closed)), encoding="utf-8")
    assert _serve_status(manifest) == 502
    assert _serve_status(manifest, "--tls-listen", "127.0.0.1:0") == 308  # Secret missing too


# --- the public surface type-checks as the docs use it -------------------------------------------


USER_PROGRAM = '''
"""A user's service written from README.md, docs/router.md and docs/asgi.md (mypy --strict)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

import ingresslib
from ingresslib import ClusterWatcher, Decision, IngressASGI, ProxySettings, Resources, Router

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

res = ingresslib.parse_manifests(SHOP)
m = ingresslib.RouteTable.build(res).match("shop.example.com:8443", "/cart/%61dd")
if m is not None:
    print(m.ingress, m.service, m.port, m.path, m.path_type, m.is_default_backend, m.host)
router = ingresslib.Router(res, seed=1)
d = router.route("GET", "shop.example.com", "/cart", headers={"X-Canary": "always"})
if d is not None and d.endpoint is not None:
    print(d.service, d.port, d.canary, d.match.ingress, d.backend)
    nxt = router.next_endpoint(d, [d.endpoint])
    if nxt is not None:
        router.observe(d, nxt, 0.01, True)
        print(router.session_cookie(d, nxt))
router.update(res)


class MyBalancer:
    uses_request = False

    def pick(self, request: ingresslib.RequestContext, backend: Any,
             tried: Collection[tuple[str, int]]) -> int | None:
        eps: tuple[tuple[str, int], ...] = backend.endpoints
        return next((i for i, ep in enumerate(eps) if ep not in tried), None)

    def observe(self, endpoint: tuple[str, int], seconds: float, ok: bool) -> None:
        pass


def factory(options: Any) -> ingresslib.Balancer:
    return MyBalancer()


ingresslib.Router(res, balancers={"mine": factory})


async def api_app(scope: Scope, receive: Receive, send: Send) -> None:
    decision: Decision = scope["ingresslib.decision"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": (decision.backend or "").encode()})


app = IngressASGI(Router(Resources()), backends={"shop/api:80": api_app},
                  settings=ProxySettings(), tls_hosts={"shop.example.com"})
watcher = ClusterWatcher(app.update, namespace="shop")
'''


def test_user_program_type_checks_strict(
        tmp_path: Path, mypy_cache_dir: Path) -> None:
    """A program using the documented API, written outside the repository, passes
    ``mypy --strict`` (the package ships py.typed and the .pyi stubs of its extensions), with the
    docs' live-update wrapper pasted in as is."""
    wrapper = next(b for b in python_blocks(DOCS / "asgi.md") if "async def app_with_watch" in b)
    wrapper = wrapper.replace("async def app_with_watch(scope, receive, send):",
                              "async def app_with_watch(scope: Scope, receive: Receive,"
                              " send: Send) -> None:")
    prog = USER_PROGRAM.replace("parse_manifests(SHOP)", f"parse_manifests({SHOP!r})") + wrapper
    (tmp_path / "user_service.py").write_text(prog, encoding="utf-8")
    out = subprocess.run([PY, "-m", "mypy", "--strict", "--cache-dir", str(mypy_cache_dir),
                          "--follow-imports=silent", "user_service.py"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "MYPYPATH": str(ROOT)})  # as if installed
    assert out.returncode == 0, out.stdout + out.stderr


# --- code defects found by the audit -------------------------------------------------------------


def test_cluster_watcher_without_lightkube_says_how_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``ClusterWatcher.run()`` without the k8s extra raises ``No module named 'lightkube'``;
    ``serve --kubernetes`` said ``pip install 'ingresslib[k8s]'``, the library API did not."""
    monkeypatch.setitem(sys.modules, "lightkube", None)
    watcher = ingresslib.ClusterWatcher(lambda res: None)
    with pytest.raises(ImportError, match=re.escape("pip install 'lightkube>=1.0.1,<1.1'")):
        asyncio.run(watcher.run(asyncio.Event()))
    with pytest.raises(ImportError, match=re.escape("pip install 'lightkube>=1.0.1,<1.1'")):
        ingresslib._kube.load_kube_config()


def test_serve_kubernetes_without_lightkube_says_it_once() -> None:
    # serve reports the library's message as its own one line, exit 2, before listening.
    code = ("import sys; sys.modules['lightkube'] = None\n"
            "from ingresslib._cli import main\n"
            "sys.exit(main(['serve', '--kubernetes', '--listen', '127.0.0.1:0']))")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("pip install 'lightkube>=1.0.1,<1.1'") == 1, out.stderr
    assert out.stderr.startswith("ingresslib serve: --kubernetes: "), out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("key", ["shop/api/80", "shop/api:80:90"])
def test_asgi_backend_key_not_of_the_documented_form_is_refused(key: str) -> None:
    """asgi.md: "Keys that are not of the form `namespace/service[:port]` raise `ValueError` at
    construction." A second ``/`` or ``:`` passes, and the key then never matches (503 for its
    requests, no message)."""
    res = ingresslib.parse_manifests(SHOP)
    with pytest.raises(ValueError, match="namespace/service"):
        ingresslib.IngressASGI(res, backends={key: _noop_app})


def test_balancer_protocol_types_are_public() -> None:
    """router.md's Balancer protocol: ``factory(options)`` gets a ``BalancerOptions`` and
    ``pick`` a ``backend`` that is an ``EndpointSet``; a typed third-party balancer needs both
    from ``ingresslib`` (it had to reach into ``ingresslib._balance`` / ``ingresslib._endpoints``
    or use ``Any``)."""
    for name in ("BalancerOptions", "EndpointSet"):
        assert name in ingresslib.__all__ and hasattr(ingresslib, name), name


def test_check_warns_about_an_ingress_of_an_api_version_it_does_not_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user's older manifests (``extensions/v1beta1`` or ``networking.k8s.io/v1beta1``
    Ingresses, removed in Kubernetes 1.22) are kept aside as other kinds (CONTRACT: "ignored, not
    rejected"); next to a v1 Ingress ``check`` then says ``ok ... 0 warning(s)`` and the old
    Ingress's routes silently did not exist. Now one warning per ignored object of a kind
    ingresslib reads under another apiVersion (the cluster-scoped IngressClass without a
    namespace)."""
    from ingresslib._cli import main as cli_main

    f = tmp_path / "mixed.yaml"
    f.write_text("""\
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: old}
spec:
  backend: {serviceName: s, servicePort: 80}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: new}
spec:
  defaultBackend: {service: {name: s, port: {number: 80}}}
""", encoding="utf-8")
    assert cli_main(["check", "-f", str(f)]) == 0  # not an error: the contract keeps it aside
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "warning: Ingress default/old: apiVersion extensions/v1beta1 is not read (ingresslib "
        "reads networking.k8s.io/v1 Ingress objects); the object is ignored"]
    assert "1 warning(s)" in captured.out
    f.write_text("apiVersion: networking.k8s.io/v1beta1\nkind: IngressClass\n"
                 "metadata: {name: old}\n", encoding="utf-8")
    assert cli_main(["check", "-f", str(f)]) == 0
    assert ("warning: IngressClass old: apiVersion networking.k8s.io/v1beta1 is not read"
            in capsys.readouterr().err)
