"""``ingresslib serve``: start-up validation (exit 2), the ``listening on`` line, file reloads under
traffic (zero failed requests; an invalid edit keeps the last good table), graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingresslib._cli import main
from ingresslib._demo import parse_echo, start_echo
from tests._server_helpers import Client


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
    deadline = time.monotonic() + 20
    want = 1 + ("--tls-listen" in args) + ("--metrics-listen" in args)
    while len(ports) < want and time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        if line.startswith("listening on "):
            url = line.split()[2]
            ports[url.split(":")[0]] = int(url.rsplit(":", 1)[1])
        elif line.startswith("metrics on "):
            ports["metrics"] = int(line.split()[2].rsplit(":", 1)[1].split("/")[0])
    if len(ports) < want:
        p.kill()
        raise AssertionError(f"no listening line; stderr: {p.stderr.read()}")
    return p, ports


def _stop(p: subprocess.Popen[str]) -> str:
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
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
        await asyncio.sleep(0.3)
        # An invalid edit: the last good table (alpha, from i=5) keeps serving.
        write(_manifests("alpha", [a[0].port]).replace("pathType: Prefix", "pathType: Sideways"))
        await asyncio.sleep(0.5)
        n = len(services)
        await asyncio.sleep(0.3)
        assert set(services[n:]) == {"alpha"}
        stop = True

    try:
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(4)), editor()), 30)
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
