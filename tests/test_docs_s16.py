"""Session 16's new-user audit: a pip user who embeds ingresslib in a service of their own,
from README.md, the docs, ``help()`` and examples/ alone.

What the earlier doc tests (test_docs.py, test_docs_recipes.py, test_docs_review.py,
test_user_audit_s13.py) do not check already. The example's defects are fixed in
examples/sansio_blocking_proxy.py (each of those tests failed on the example before the fix);
the tests at the end held the library to what its docs say where it did not (session 16's
audit): each names the doc text.
"""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ingresslib
from ingresslib import _accesslog, _config
from ingresslib._cli import main as cli_main
from ingresslib.proxy import CloseUpstream, Proxy, ProxySettings, RequestRecord

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sansio_blocking_proxy.py"
PY = sys.executable


# --- examples/sansio_blocking_proxy.py: its upstream keep-alive pool -----------------------------


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sansio_blocking_proxy_s16", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve_closing_idle(server: socket.socket, idle: float) -> None:
    """A keep-alive HTTP/1.1 backend that closes a connection once it has been idle ``idle``
    seconds (gunicorn's, Node's and most servers' keep-alive timeout, only shorter). Each
    answer names the request line and body it got."""

    def handle(conn: socket.socket) -> None:
        conn.settimeout(idle)
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:  # the idle timeout
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    body, buf = buf[:length], buf[length:]
                    out = head.split(b"\r\n")[0] + b" " + body
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(out), out))

    while True:
        try:
            conn, _ = server.accept()
        except OSError:  # closed: the test is over
            return
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


@pytest.fixture
def example_proxy() -> Iterator[str]:
    """The example as its docstring runs it, in front of a backend that closes idle
    connections after 0.2 s; yields the proxy's URL."""
    backend = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve_closing_idle, args=(backend, 0.2), daemon=True).start()
    proc = subprocess.Popen(
        [PY, str(EXAMPLE), "--backend", f"127.0.0.1:{backend.getsockname()[1]}",
         "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first line it prints is this one
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
        backend.close()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def test_sansio_example_posts_after_the_backend_closed_an_idle_connection(
        example_proxy: str) -> None:
    # Before: the example's pool handed out the idle socket the backend had closed; the POST
    # went out on it, failed after the bytes were sent, and the core does not replay a POST
    # then (API.md, OpenUpstream: "idempotent requests only once bytes were sent"): 502.
    # ProxyServer's pool does not hand such a socket out (API.md, CloseUpstream: "never hands
    # out an idle connection whose socket holds unread input (bytes, EOF, error)").
    assert _post(example_proxy + "/first", b"one") == (200, b"POST /first HTTP/1.1 one")
    time.sleep(0.6)  # the backend closes the pooled connection meanwhile
    assert _post(example_proxy + "/second", b"two") == (200, b"POST /second HTTP/1.1 two")


def _driver(module: ModuleType, settings: ProxySettings) -> Any:
    res = ingresslib.parse_manifests(module.MANIFESTS.format(ip="127.0.0.1", port=9))
    return module.Driver(Proxy(ingresslib.Router(res), settings), ("127.0.0.1", 0))


def _release(module: ModuleType, driver: Any, n: int) -> list[socket.socket]:
    """``n`` connected upstream sockets handed back with ``CloseUpstream(reuse=True)``, as the
    core hands them back when a response ended cleanly; returns them, oldest first."""
    ours, theirs = socket.socketpair()
    _OPENED.extend((ours, theirs))
    client = module.Client(ours, driver.proxy.connection(("127.0.0.1", 1), now=0.0))
    socks = []
    for cid in range(1, n + 1):
        a, b = socket.socketpair()  # b, the backend's end, stays open: only the driver closes a
        _OPENED.extend((a, b))
        client.upstreams[cid] = module.Upstream(a, ("127.0.0.1", 9), cid, client, True, 0.0)
        socks.append(a)
        driver.perform(client, [CloseUpstream(cid, True)])
    return socks


_OPENED: list[socket.socket] = []


@pytest.fixture
def example() -> Iterator[ModuleType]:
    yield _load_example()
    while _OPENED:
        _OPENED.pop().close()


def test_sansio_example_keeps_at_most_upstream_keepalive_connections(
        example: ModuleType) -> None:
    # API.md, CloseUpstream: "return the socket to the endpoint's idle pool (server applies
    # upstream_keepalive_connections)". Before: every released socket was kept, without bound.
    driver = _driver(example, ProxySettings(upstream_keepalive_connections=1))
    try:
        older, newer = _release(example, driver, 2)
        assert older.fileno() == -1  # the least recently released one is closed
        assert newer.fileno() != -1
    finally:
        driver.lsock.close()
        driver.sel.close()


def test_sansio_example_closes_upstreams_idle_past_upstream_keepalive_timeout(
        example: ModuleType) -> None:
    # ProxySettings.upstream_keepalive_timeout (API.md): "an idle pooled connection is closed
    # once it has been idle this long". Before: kept until taken again, however long.
    driver = _driver(example, ProxySettings(upstream_keepalive_timeout=0.05))
    try:
        (sock,) = _release(example, driver, 1)
        assert sock.fileno() != -1
        time.sleep(0.1)
        driver._timers()  # what serve_forever runs before each select
        assert sock.fileno() == -1
    finally:
        driver.lsock.close()
        driver.sel.close()


# --- help(): the examples in the public names' docstrings -----------------------------------------


def _public_doctests() -> list[tuple[str, doctest.DocTest]]:
    """The docstring examples of ``ingresslib.__all__``, in the namespace a user has after
    ``import ingresslib; from ingresslib import *`` (what ``help()`` shows them to)."""
    globs = {"ingresslib": ingresslib, **{n: getattr(ingresslib, n) for n in ingresslib.__all__}}
    out = []
    for name in ingresslib.__all__:
        obj = getattr(ingresslib, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        for test in doctest.DocTestFinder(recurse=False).find(obj, name, globs=dict(globs)):
            if test.examples:
                out.append((name, test))
    return out


_DOCTESTS = _public_doctests()


@pytest.mark.parametrize("name,test", [pytest.param(n, t, id=n) for n, t in _DOCTESTS])
def test_public_docstring_examples_run_with_public_names(name: str,
                                                         test: doctest.DocTest) -> None:
    out: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    try:
        runner.run(test, out=out.append)
    finally:
        if name == "register_balancer":  # leave no balancer registered, whatever happened
            from ingresslib._balance import registered_balancers, unregister_balancer
            if "first" in registered_balancers():
                unregister_balancer("first")
    assert runner.failures == 0, "".join(out)


def test_the_public_docstrings_with_examples_are_found() -> None:
    # The parametrisation above is not empty by accident.
    assert {"Router", "RouteTable", "IngressASGI", "Proxy", "register_balancer"} <= \
        {n for n, _ in _DOCTESTS}


def _own_docstring(obj: Any) -> str | None:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    return doc if isinstance(doc, str) and doc.strip() else None


_PUBLIC_TYPES = [n for n in ingresslib.__all__
                 if inspect.isclass(getattr(ingresslib, n)) or
                 inspect.isfunction(getattr(ingresslib, n))]


@pytest.mark.parametrize("name", [
    pytest.param(n) for n in _PUBLIC_TYPES])
def test_public_names_have_their_own_docstring(name: str) -> None:
    assert _own_docstring(getattr(ingresslib, name)) is not None


# --- docs/observability.md: the served hosts and certificates of an embedding ------------------


def test_metrics_hosts_and_certificates_of_a_routers_table() -> None:
    # observability.md says ``Metrics.set_hosts(hosts_of(res, served))`` and
    # ``set_certificates(certificates_of(res, served_ingresses))`` without saying where the
    # two functions and ``served`` come from; the replacement text proposed in the report
    # names them: ``ingresslib._metrics`` and ``router.table.served``. This runs it.
    from ingresslib._metrics import certificates_of, hosts_of

    res = ingresslib.parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n"
        "spec: {controller: k8s.io/ingress-nginx}\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\nspec:\n"
        "  ingressClassName: nginx\n  rules:\n  - host: a.example.test\n    http:\n"
        "      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: s, port: "
        "{number: 80}}}}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata: {name: b}\nspec:\n  ingressClassName: other\n  rules:\n"
        "  - host: b.example.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, "
        "backend: {service: {name: s, port: {number: 80}}}}\n")
    router = ingresslib.Router(res, ingress_class="nginx")
    assert hosts_of(res, router.table.served) == {"a.example.test"}  # b is not served
    assert certificates_of(res, router.table.served) == []  # no tls section
    metrics = ingresslib.Metrics()
    metrics.set_hosts(hosts_of(res, router.table.served))
    metrics.set_certificates(certificates_of(res, router.table.served))


# --- the JSON access log --------------------------------------------------------------------------


def _record(**changes: Any) -> RequestRecord:
    fields: dict[str, Any] = dict(
        method="GET", host="shop.example.test", path="/cart", query=None, rule_path="/cart",
        ingress="shop/shop", service="api", namespace="shop", canary=False, status=200,
        bytes_in=80, bytes_out=120, upstreams=(("10.0.0.1", 8080),), upstream_status=200,
        upstream_statuses=(200,), start=100.0, upstream_connect=100.001,
        upstream_first_byte=100.02, end=100.25, request_id="abc", client_ip="192.0.2.1",
        http_version="1.1", user_agent="curl/8", referer=None, upstream_response_length=40,
        upstream_response_time=0.24)
    fields.update(changes)
    return RequestRecord(**fields)


def _json_line(record: RequestRecord) -> dict[str, Any]:
    stream = io.StringIO()
    handler = ingresslib.configure_access_log(stream, "json")
    try:
        ingresslib.AccessLog()(record)
    finally:
        logging.getLogger("ingresslib.access").removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    obj: dict[str, Any] = json.loads(line)
    return obj


def test_json_access_log_counts_are_numbers_and_missing_values_null() -> None:
    # docs/observability.md "Access log": "numbers stay numbers, a missing value is null".
    obj = _json_line(_record())
    for key in ("status", "body_bytes_sent", "request_length", "upstream_response_length"):
        assert type(obj[key]) is int, (key, obj[key])
    assert obj["http_referer"] is None and obj["remote_user"] is None


# --- places where the code did not do what the docs say (fixed in session 16) -------------------


def test_json_access_log_times_are_numbers() -> None:
    # docs/observability.md: "numbers stay numbers" (they were the text line's strings).
    obj = _json_line(_record())
    assert obj["request_time"] == pytest.approx(0.25)
    assert obj["upstream_response_time"] == pytest.approx(0.24)


def test_json_access_log_length_is_a_number_after_retries_too() -> None:
    # The text line lists one length per try ("0, 40"); in JSON a field must keep one type
    # (a log store refuses a line whose field changed from number to string).
    record = _record(upstreams=(("10.0.0.2", 8080), ("10.0.0.1", 8080)),
                     upstream_statuses=(None, 200))
    obj = _json_line(record)
    assert obj["upstream_response_length"] == 40
    assert obj["upstream_addr"] == "10.0.0.2:8080, 10.0.0.1:8080"
    assert _accesslog.format_line(_accesslog.access_fields(record)).count(" 0, 40 ") == 1


#: ``ProxySettings`` keyword arguments that ``serve --config`` refuses as ConfigMap values
#: (CONTRACT.md: "invalid values rejected with exit 2. The same settings are keyword arguments
#: of the Python server API."), which ``ProxySettings`` takes without a word.
_REFUSED = [
    ("proxy_next_upstream", ("error", "timout"), "proxy-next-upstream", "error timout"),
    ("proxy_next_upstream_tries", -1, "proxy-next-upstream-tries", "-1"),
    ("proxy_body_size", -1, "proxy-body-size", "-1"),
    ("upstream_keepalive_connections", -1, "upstream-keepalive-connections", "-1"),
    ("hsts_max_age", -1, "hsts-max-age", "-1"),
]


@pytest.mark.parametrize("field,value,key,text", _REFUSED, ids=[r[0] for r in _REFUSED])
def test_the_configmap_refuses_these_values(field: str, value: Any, key: str,
                                            text: str) -> None:
    with pytest.raises(ingresslib.ValidationError, match=key):
        _config.parse_config_data({key: text})


@pytest.mark.parametrize("field,value,key,text", _REFUSED, ids=[r[0] for r in _REFUSED])
def test_proxy_settings_refuse_what_the_configmap_refuses(field: str, value: Any, key: str,
                                                          text: str) -> None:
    with pytest.raises(ValueError, match=field):
        ProxySettings(**{field: value})


@pytest.mark.parametrize("url", ["ftp://shop.example.test/cart", "htp://shop.example.test/cart"])
def test_explain_refuses_a_url_of_another_scheme(url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop}\nspec:\n"
        "  rules:\n  - host: shop.example.test\n    http:\n      paths:\n"
        "      - {path: /cart, pathType: Prefix, backend: {service: {name: api, port: "
        "{number: 80}}}}\n")
    assert cli_main(["explain", "-f", str(manifest), "http://shop.example.test/cart"]) == 0
    capsys.readouterr()
    assert cli_main(["explain", "-f", str(manifest), url]) == 2
    assert "scheme" in capsys.readouterr().err



_NO_CLASS_OBJECT = (
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n"
    "  ingressClassName: nginx\n  rules:\n  - host: shop.example.test\n    http:\n"
    "      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: "
    "{number: 80}}}}\n")


def test_a_class_filter_serves_nothing_without_the_ingressclass_object() -> None:
    # SEMANTICS §3 (a documented choice): "It is served iff an IngressClass of that name
    # exists ... A named class that does not exist is never served." README's first example
    # filters on ingress_class="nginx" over "your own folder of manifests", which often holds
    # the Ingresses only (the IngressClass is the cluster's): every request is then a 404.
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(_NO_CLASS_OBJECT),
                                        ingress_class="nginx")
    assert table.match("shop.example.test", "/") is None
    (diag,) = table.diagnostics
    assert (diag.object, diag.field) == ("Ingress default/web", "spec.ingressClassName")


def test_the_diagnostic_names_the_missing_ingressclass() -> None:
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(_NO_CLASS_OBJECT),
                                        ingress_class="nginx")
    (diag,) = table.diagnostics
    assert "does not match" not in diag.message
    assert 'IngressClass "nginx"' in diag.message


def test_serve_says_it_cannot_read_standard_input() -> None:
    # README: check and explain read "-f -"; serve, which re-reads its files, refuses it (it
    # answered "-: Not found: no such file or directory").
    proc = subprocess.run(
        [PY, "-m", "ingresslib", "serve", "-f", "-", "--listen", "127.0.0.1:0",
         "--access-log", "off"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 2
    assert "standard input" in proc.stderr, proc.stderr


def _readme_cluster_line() -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    (line,) = [ln for ln in lines if ln.startswith("ingresslib serve --kubernetes")]
    return line


def test_serve_listens_on_loopback_unless_told() -> None:
    from ingresslib._cli import build_parser

    args = build_parser().parse_args(["serve", "--kubernetes"])
    assert args.listen in ("127.0.0.1:8080", ("127.0.0.1", 8080))


def test_readme_cluster_command_listens_where_a_service_reaches_it() -> None:
    assert "--listen 0.0.0.0:" in _readme_cluster_line()
