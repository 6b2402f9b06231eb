"""``ingresslib serve``: start-up validation (exit 2), the ``listening on`` line, file reloads under
traffic (zero failed requests; an invalid edit keeps the last good table), graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingresslib._cli import main
from ingresslib._demo import parse_echo, start_echo
from tests._process_helpers import kill_after, stderr_until_exit
from tests._server_helpers import Client
from tests._upstream_helpers import until


def _manifests(service: str, ports: list[int], extra: str = "") -> str:
    slices = "".join(f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {service}-{i}, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
ports: [{{name: http, port: {p}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
""" for i, p in enumerate(ports))
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {service}}}
spec: {{ports: [{{name: http, port: 80, targetPort: http}}]}}
{slices}{extra}"""


def test_serve_exit_2_with_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: "UPPER.test"
    http:
      paths:
      - {path: "no-slash", pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
""")
    assert main(["serve", "-f", str(bad), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "spec.rules[0].host" in err and "spec.rules[0].http.paths[0].path" in err
    assert "listening on" not in err


def test_serve_needs_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", "127.0.0.1:0"]) == 2


def test_serve_bad_listen_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [1]))
    assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:http"]) == 2
    assert "--listen" in capsys.readouterr().err


def test_serve_invalid_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [1]))
    cfg = tmp_path / "cm.yaml"
    cfg.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {proxy-body-size: big}\n")
    assert main(["serve", "-f", str(m), "--config", str(cfg), "--listen", "127.0.0.1:0"]) == 2
    assert "data.proxy-body-size" in capsys.readouterr().err


def _start_serve(*args: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    p = subprocess.Popen([sys.executable, "-m", "ingresslib", "serve", *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ports: dict[str, int] = {}
    assert p.stderr is not None
    want = 1 + ("--tls-listen" in args) + ("--metrics-listen" in args)
    seen: list[str] = []
    # readline() has no time limit of its own: a serve that hangs before its listening lines
    # is killed (end of file). Generous: a loaded 2-core machine starts Python slowly.
    with kill_after(p, 60):
        while len(ports) < want:
            line = p.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("listening on "):
                url = line.split()[2]
                ports[url.split(":")[0]] = int(url.rsplit(":", 1)[1])
            elif line.startswith("metrics on "):
                ports["metrics"] = int(line.split()[2].rsplit(":", 1)[1].split("/")[0])
    if len(ports) < want:
        p.kill()
        raise AssertionError(f"no listening line; stderr: {''.join(seen)}"
                             f"{stderr_until_exit(p, 30)}")
    return p, ports


def _stop(p: subprocess.Popen[str]) -> str:
    """SIGTERM, then everything serve wrote to stderr after ``_start_serve``'s listening lines
    (including what its readline() buffered: not ``communicate()``, which drops that)."""
    p.send_signal(signal.SIGTERM)
    err = stderr_until_exit(p, 30)
    assert p.returncode == 0, err
    return err


@pytest.mark.network
@pytest.mark.asyncio
async def test_listening_line_real_port_and_proxying(tmp_path: Path) -> None:
    echo = await start_echo("web", "web-0")
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [echo.port]))
    p, ports = await asyncio.to_thread(_start_serve, "-f", str(m), "--listen", "127.0.0.1:0",
                                       "--tls-listen", "127.0.0.1:0", "--access-log", "json",
                                       "--metrics-listen", "127.0.0.1:0")
    try:
        assert ports["http"] > 0 and ports["https"] > 0 and ports["http"] != ports["https"]
        c = await Client.open(ports["http"])
        r = await c.get("app.test", "/hello")
        assert r.status == 200 and parse_echo(r.body)["pod"] == "web-0"
        assert (await c.get("nope.test")).status == 404
        await c.close()
        m = await Client.open(ports["metrics"])
        text = (await m.get("localhost", "/metrics")).body.decode()
        await m.close()
        assert 'nginx_ingress_controller_requests{' in text and 'status="200"' in text
        # serve hands the served rule hosts to the metrics (set_hosts): app.test is counted,
        # a Host no rule names is not (ingress-nginx counts its servers' names only).
        assert 'host="app.test"' in text and 'host="nope.test"' not in text
    finally:
        await asyncio.to_thread(_stop, p)
        await echo.stop()


@pytest.mark.asyncio
async def test_reload_waits_for_a_file_being_written(tmp_path: Path) -> None:
    # A shell's `>` or an editor writing in pieces: a poll that catches the file half-written
    # must not load it, even when the half is valid on its own (one Ingress of two): that would
    # drop the other Ingress's routes until the next poll.
    from ingresslib._serve import Reloader

    class Router:
        def __init__(self) -> None:
            self.loaded: list[list[str]] = []

        def update(self, res: object) -> None:
            self.loaded.append(sorted(i.metadata.name for i in res.ingresses))  # type: ignore[attr-defined]

    def ingress(name: str) -> str:
        return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\n"
                f"spec: {{defaultBackend: {{service: {{name: s, port: {{number: 80}}}}}}}}\n")

    class Server:
        router = Router()
        cert_store = None

    m = tmp_path / "m.yaml"
    m.write_text(ingress("a") + "---\n" + ingress("b"))
    reloader = Reloader(Server(), [str(tmp_path)], ingress_class=None, controller=None,
                        interval=1.0)
    m.write_text(ingress("a"))  # caught here, half written (valid on its own)

    async def finish() -> None:
        await asyncio.sleep(0.05)
        with m.open("a") as f:
            f.write("---\n" + ingress("c"))

    writer = asyncio.ensure_future(finish())
    assert await reloader.check() is None  # still changing: not loaded
    await writer
    assert await reloader.check() is True
    assert Server.router.loaded == [["a", "c"]]


def test_config_digest_follows_the_configuration_not_the_endpoints() -> None:
    from ingresslib import parse_manifests
    from ingresslib._serve import config_digest

    base = _manifests("alpha", [8080])
    res = parse_manifests(base)
    d = config_digest(res, res.ingresses)
    assert len(d) == 64 and d == config_digest(parse_manifests(base), res.ingresses)
    # Endpoints change without a reload: the digest stays.
    more = parse_manifests(_manifests("alpha", [8080, 8081]))
    assert config_digest(more, more.ingresses) == d
    # The Ingress, the Service or the ConfigMap settings change it.
    other = parse_manifests(base.replace("app.test", "shop.test"))
    assert config_digest(other, other.ingresses) != d
    svc = parse_manifests(base.replace("port: 80, targetPort", "port: 81, targetPort"))
    assert config_digest(svc, svc.ingresses) != d
    assert config_digest(res, res.ingresses, "settings") != d
    assert config_digest(res, ()) != d  # the same objects, but the Ingress is not served


@pytest.mark.network
@pytest.mark.asyncio
async def test_reload_under_traffic_zero_failures(tmp_path: Path) -> None:
    a = [await start_echo("alpha", f"alpha-{i}") for i in range(2)]
    b = [await start_echo("beta", f"beta-{i}") for i in range(2)]
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("alpha", [x.port for x in a]))
    p, ports = await asyncio.to_thread(_start_serve, "-f", str(tmp_path), "--listen", "127.0.0.1:0",
                                       "--reload-interval", "0.1", "--access-log", "off")
    port = ports["http"]
    failures: list[str] = []
    services: list[str] = []
    stop = False

    async def worker() -> None:
        c = await Client.open(port)
        while not stop:
            try:
                r = await c.get("app.test")
            except ConnectionError as e:
                failures.append(repr(e))
                await c.close()
                c = await Client.open(port)
                continue
            if r.status != 200:
                failures.append(str(r.status))
            else:
                services.append(parse_echo(r.body)["service"])
        await c.close()

    def write(text: str) -> None:
        # Atomic replace, as editors and ConfigMap volumes do; bump mtime explicitly since two
        # writes may land within the filesystem's timestamp granularity.
        tmp = tmp_path / ".m.tmp"
        tmp.write_text(text)
        os.replace(tmp, m)
        st = m.stat()
        os.utime(m, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))

    async def editor() -> None:
        nonlocal stop
        for i in range(6):
            await asyncio.sleep(0.3)
            write(_manifests("beta" if i % 2 == 0 else "alpha", [x.port for x in (b if i % 2 == 0 else a)]))
        # Alpha (i=5) serves: waited for, not slept for (a loaded machine polls late).
        assert await until(lambda: services[-20:] == ["alpha"] * 20, 30)
        # An invalid edit: the last good table (alpha, from i=5) keeps serving.
        write(_manifests("alpha", [a[0].port]).replace("pathType: Prefix", "pathType: Sideways"))
        await asyncio.sleep(0.5)  # a few polls (the log below says it was read)
        n = len(services)
        assert await until(lambda: len(services) >= n + 20, 30)  # some traffic since
        assert set(services[n:]) == {"alpha"}
        assert await until(lambda: len(services) > 100, 30)  # asserted below
        stop = True

    try:
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(4)), editor()), 120)
        assert failures == []
        assert {"alpha", "beta"} <= set(services) and len(services) > 100
    finally:
        err = await asyncio.to_thread(_stop, p)
        for x in a + b:
            await x.stop()
    assert "reload failed; keeping the last good configuration" in err
    assert "Sideways" in err


@pytest.mark.network
@pytest.mark.asyncio
async def test_certificate_swap_on_reload_without_restart(tmp_path: Path) -> None:
    import base64
    import ssl

    import trustme

    ca = trustme.CA()
    echo = await start_echo("web", "web-0")

    def manifests(*names: str) -> str:
        leaf = ca.issue_cert(*names)
        crt = base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode()
        key = base64.b64encode(leaf.private_key_pem.bytes()).decode()
        return _manifests("web", [echo.port]).replace(
            "spec:\n  rules:", "spec:\n  tls: [{hosts: [app.test], secretName: app-tls}]\n  rules:", 1
        ) + f"""---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {{name: app-tls}}
data: {{tls.crt: {crt}, tls.key: {key}}}
"""

    m = tmp_path / "m.yaml"
    m.write_text(manifests("app.test"))
    p, ports = await asyncio.to_thread(_start_serve, "-f", str(m), "--listen", "127.0.0.1:0",
                                       "--tls-listen", "127.0.0.1:0", "--reload-interval", "0.1",
                                       "--access-log", "off")
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def sans() -> set[str]:
        c = await Client.open(ports["https"], tls=client_ctx, sni="app.test")
        cert = c.writer.get_extra_info("peercert")
        r = await c.get("app.test")
        assert r.status == 200 and r.headers["strict-transport-security"].startswith("max-age=")
        await c.close()
        return {v for k, v in cert["subjectAltName"] if k == "DNS"}

    try:
        assert await sans() == {"app.test"}
        # HTTP to a host with TLS: 308 to the HTTPS listener (ssl-redirect default).
        c = await Client.open(ports["http"])
        r = await c.get("app.test", "/x")
        assert r.status == 308 and r.headers["location"] == f"https://app.test:{ports['https']}/x"
        await c.close()
        m.write_text(manifests("app.test", "www.app.test"))
        st = m.stat()
        os.utime(m, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if await sans() == {"app.test", "www.app.test"}:
                break
        assert await sans() == {"app.test", "www.app.test"}
    finally:
        await asyncio.to_thread(_stop, p)
        await echo.stop()


# -- bad input at start-up -------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "127.0.0.1:80:90",   # two ports: was taken as a host name, failed to bind, exit 1
    "[::1",              # unclosed bracket
    "[::1]x",            # junk after the bracket (was: port 8080)
    "[]:0",              # empty bracketed host (was: 0.0.0.0, every interface)
    "127.0.0.1:+0",      # int() accepts a sign and spaces; a port is digits only
    "127.0.0.1: 0",
    "127.0.0.1:\u0663",  # ... and any Unicode digit
    "::1",               # an IPv6 literal needs brackets when a port may follow
    "127.0.0.1:",
    "127.0.0.1:65536",
])
def test_serve_rejects_malformed_listen_values(value: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [1]))
    assert main(["serve", "-f", str(m), "--listen", value, "--reload-interval", "0"]) == 2
    err = capsys.readouterr().err
    assert "--listen" in err and "listening on" not in err


def test_listen_values_accepted() -> None:
    from ingresslib.proxy._server import parse_listen as check_listen

    # "[::1]:0" is only parsed here, never bound: tests listen on 127.0.0.1 only.
    assert check_listen("[::1]:0", 8080) == ("::1", 0)
    assert check_listen("127.0.0.1:0", 8080) == ("127.0.0.1", 0)
    assert check_listen("localhost", 8443) == ("localhost", 8443)  # no port: the default
    assert check_listen(":8081", 8080) == ("0.0.0.0", 8081)
    assert check_listen("8081", 8080) == ("0.0.0.0", 8081)


def test_serve_port_in_use_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [1]))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["serve", "-f", str(m), "--listen", f"127.0.0.1:{port}",
                     "--reload-interval", "0"]) == 1
    err = capsys.readouterr().err
    assert "cannot listen" in err and "listening on" not in err


def test_serve_missing_manifest_or_config_exits_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert main(["serve", "-f", missing, "--listen", "127.0.0.1:0"]) == 2
    assert "Not found" in capsys.readouterr().err
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [1]))
    assert main(["serve", "-f", str(m), "--config", missing, "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "listening on" not in err
    # Regression: a --config file that is not UTF-8 ended serve with a traceback and status 1.
    binary = tmp_path / "cm.yaml"
    binary.write_bytes(b"\xff\xfe\x00not text\x80")
    assert main(["serve", "-f", str(m), "--config", str(binary), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "cm.yaml" in err and "UTF-8" in err and "listening on" not in err
    # A folder where the ConfigMap file should be is refused too.
    assert main(["serve", "-f", str(m), "--config", str(tmp_path), "--listen", "127.0.0.1:0"]) == 2


# -- live reloads -------------------------------------------------------------------------------


def _bump(path: Path, text: str) -> None:
    """Replace ``path`` atomically and move its mtime (writes may share a timestamp)."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def _configmap(body_size: str) -> str:
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingresslib}\n"
            f"data: {{proxy-body-size: \"{body_size}\"}}\n")


async def _first_status(port: int, request: bytes) -> int:
    """The status of the answer to ``request``, sent on a new connection to 127.0.0.1."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1])
    finally:
        writer.close()


async def _post_status(port: int, size: int, host: str = "app.test") -> int:
    """The status of a ``size``-byte POST to ``host`` (Connection: close)."""
    return await _first_status(
        port, b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close"
        b"\r\n\r\n%s" % (host.encode(), size, b"x" * size))


@pytest.mark.network
@pytest.mark.asyncio
async def test_configmap_edits_apply_live_and_invalid_ones_keep_the_last_good(
        tmp_path: Path) -> None:
    # Regression: --config was read once at start-up; an edit of the ConfigMap file (a mounted
    # ConfigMap volume) changed nothing until a restart. ingress-nginx applies ConfigMap edits
    # live; an invalid edit keeps the settings serving (SEMANTICS §11) and is logged.
    echo = await start_echo("web", "web-0")
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [echo.port]))
    cm = tmp_path / "cm.yaml"
    cm.write_text(_configmap("5"))
    p, ports = await asyncio.to_thread(_start_serve, "-f", str(m), "--config", str(cm),
                                       "--listen", "127.0.0.1:0", "--reload-interval", "0.05",
                                       "--access-log", "off")
    port = ports["http"]

    async def until_status(size: int, want: int) -> None:
        for _ in range(100):
            if await _post_status(port, size) == want:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never {want}")

    try:
        assert await _post_status(port, 10) == 413
        _bump(cm, _configmap("1m"))
        await until_status(10, 200)
        _bump(cm, _configmap("big"))  # invalid: the 1m limit stays
        await asyncio.sleep(0.5)
        assert await _post_status(port, 10) == 200
        _bump(cm, _configmap("5"))   # valid again
        await until_status(10, 413)
        assert p.poll() is None
    finally:
        err = await asyncio.to_thread(_stop, p)
        await echo.stop()
    assert "data.proxy-body-size" in err and "keeping the last good configuration" in err


@pytest.mark.asyncio
async def test_manifest_invalid_then_missing_then_valid_again(tmp_path: Path) -> None:
    from ingresslib._serve import Reloader

    class Router:
        def __init__(self) -> None:
            self.loaded: list[list[str]] = []

        def update(self, res: object) -> None:
            self.loaded.append(sorted(i.metadata.name for i in res.ingresses))  # type: ignore[attr-defined]

    class Server:
        router = Router()
        cert_store = None

    def ingress(name: str, path: str = "/") -> str:
        return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\n"
                f"spec: {{rules: [{{http: {{paths: [{{path: '{path}', pathType: Prefix, "
                f"backend: {{service: {{name: s, port: {{number: 80}}}}}}}}]}}}}]}}\n")

    m = tmp_path / "m.yaml"
    m.write_text(ingress("a"))
    r = Reloader(Server(), [str(m)], ingress_class=None, controller=None, settle=0)
    _bump(m, ingress("b", path="no-slash"))
    assert await r.check() is False and "spec.rules[0].http.paths[0].path" in (r.last_error or "")
    m.unlink()  # gone (a ConfigMap volume key removed), or a dangling symlink: keep serving
    m.symlink_to(tmp_path / "nowhere.yaml")
    assert await r.check() is False and "Not found" in (r.last_error or "")
    m.unlink()
    _bump(m, ingress("c"))
    assert await r.check() is True and r.last_error is None
    assert Server.router.loaded == [["c"]]  # only the valid version was ever swapped in
    assert r.failures == 2 and r.reloads == 1


# -- graceful stop ------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_finishes_requests_in_flight_and_closes_the_listener(
        tmp_path: Path, sig: signal.Signals) -> None:
    got_request = asyncio.Event()
    release = asyncio.Event()

    async def slow_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got_request.set()
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow")
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(slow_upstream, "127.0.0.1", 0)
    up_port = upstream.sockets[0].getsockname()[1]
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [up_port]))
    p, ports = await asyncio.to_thread(_start_serve, "-f", str(m), "--listen", "127.0.0.1:0",
                                       "--access-log", "off", "--shutdown-timeout", "10")
    port = ports["http"]
    try:
        c = await Client.open(port)
        pending = asyncio.ensure_future(c.get("app.test", "/slow"))
        await asyncio.wait_for(got_request.wait(), 5)
        p.send_signal(sig)
        # The listener closes at once: new connections are refused while the request runs.
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                await asyncio.sleep(0.05)
            except ConnectionRefusedError:
                break
        else:
            raise AssertionError(f"listener still open after {sig.name}")
        assert p.poll() is None and not pending.done()
        release.set()
        r = await asyncio.wait_for(pending, 5)
        assert r.status == 200 and r.body == b"slow"
        await c.close()
        await asyncio.to_thread(p.communicate, timeout=10)
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        upstream.close()
        await upstream.wait_closed()


@pytest.mark.asyncio
async def test_invalid_configmap_does_not_hold_back_manifest_edits(tmp_path: Path) -> None:
    # Regression: the ConfigMap and the manifests were one reload: while the ConfigMap file held
    # an invalid value, every manifest edit was refused too (and, polled once, never retried).
    from ingresslib._config import load_config
    from ingresslib._serve import Reloader

    class Router:
        load_balance = "round_robin"

        def __init__(self) -> None:
            self.loaded: list[list[str]] = []

        def update(self, res: object) -> None:
            self.loaded.append(sorted(i.metadata.name for i in res.ingresses))  # type: ignore[attr-defined]

    class Server:
        router = Router()
        cert_store = None
        settings: object = None

    def ingress(name: str) -> str:
        return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\n"
                f"spec: {{defaultBackend: {{service: {{name: s, port: {{number: 80}}}}}}}}\n")

    m = tmp_path / "m.yaml"
    m.write_text(ingress("a"))
    cm = tmp_path / "cm.yaml"
    cm.write_text(_configmap("5"))
    server = Server()
    r = Reloader(server, [str(m)], ingress_class=None, controller=None, settle=0,
                 config=load_config(cm), config_path=str(cm))
    _bump(cm, _configmap("big"))
    assert await r.check() is False and "proxy-body-size" in (r.last_error or "")
    _bump(m, ingress("b"))  # the ConfigMap is still invalid: the manifests apply all the same
    assert await r.check() is False
    assert Server.router.loaded[-1] == ["b"] and server.settings is None
    _bump(cm, _configmap("1k"))
    assert await r.check() is True
    assert server.settings is not None and server.settings.proxy_body_size == 1024  # type: ignore[attr-defined]


def test_edit_during_start_up_is_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: the reloader took its first look at the files after serve had loaded them
    # and started listening; an edit landing in between (a ConfigMap volume updated while the
    # pod starts) was taken for the state already loaded and never applied.
    import threading

    import ingresslib._load
    from ingresslib._serve import Reloader

    # serve's SIGTERM handler (loop.add_signal_handler) is what the SIGTERMs below reach: it is
    # only installed in the main thread, elsewhere they would end the test process.
    assert threading.current_thread() is threading.main_thread()
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("alpha", [1]))
    real_load = ingresslib._load.load_manifests

    def load_then_edit(*paths: str) -> object:
        res = real_load(*paths)
        _bump(m, _manifests("beta", [1]))  # right after start-up read the file
        return res

    monkeypatch.setattr(ingresslib._load, "load_manifests", load_then_edit)
    seen: list[list[str]] = []
    real_check, real_run = Reloader.check, Reloader.run

    async def check(self: Reloader) -> bool | None:
        monkeypatch.setattr(ingresslib._load, "load_manifests", real_load)
        result = await real_check(self)
        if result is not None:
            seen.append(sorted(s.metadata.name for s in self.server.router.resources.services))
            os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler: a graceful stop
        return result

    async def run(self: Reloader) -> None:
        asyncio.get_running_loop().call_later(5, os.kill, os.getpid(), signal.SIGTERM)
        await real_run(self)

    monkeypatch.setattr(Reloader, "check", check)
    monkeypatch.setattr(Reloader, "run", run)
    assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0", "--reload-interval", "0.05",
                 "--access-log", "off"]) == 0
    assert seen == [["beta"]]


def _client_hello(server_name: bytes) -> bytes:
    """A real ClientHello (Python's own) whose SNI bytes are then swapped for ``server_name``
    (same length, so no length field changes): the ssl module never sends a non-ASCII name."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    placeholder = b"a" * len(server_name) + b".test"
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=placeholder.decode())
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello.count(placeholder) == 1
    return hello.replace(placeholder, server_name + b".test")


@pytest.mark.asyncio
async def test_a_non_ascii_sni_gets_the_default_certificate_without_a_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # CPython's SNI callback decodes the name as ASCII before any Python code sees it and
    # reports a failure through sys.unraisablehook (a traceback on stderr per handshake, which
    # any client can repeat) and a failed handshake. The listener reads the ClientHello's name
    # itself and never installs that callback: the default certificate, as nginx
    # (certificate.lua falls back to the default certificate for a name it does not hold).
    from ingresslib.proxy._server import ProxyServer
    from tests._server_helpers import StubRouter

    seen: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)  # restored after the test
    server = ProxyServer(StubRouter([]))
    await server.start(None, ("127.0.0.1", 0))
    try:
        r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        try:
            w.write(_client_hello("bücher".encode("latin-1")))
            await w.drain()
            answer = await asyncio.wait_for(r.read(100), 5)
            assert answer[:1] == b"\x16"  # a handshake record (ServerHello), not an alert
            assert seen == []
        finally:
            w.close()
    finally:
        await server.shutdown(1)
