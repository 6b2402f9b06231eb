"""Session 24 (K2): ``ingresslib serve --kubernetes`` run for real, as a subprocess, against the
fake API server of tests/_fake_kube.py and echo backends, all on 127.0.0.1 (port 0); the
cluster is changed under it and the proxy, the metrics and the access log are checked to
follow within a bounded time."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ingresslib._demo import parse_echo, start_echo

from _fake_kube import FakeKube, kubeconfig_dict
from _process_helpers import kill_after, stderr_until_exit
from _server_helpers import Client

pytestmark = pytest.mark.network


# -- the cluster's objects -----------------------------------------------------------------------


def ingress(name: str, host: str, service: str, *, namespace: str = "default",
            klass: str | None = None, tls: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
    if klass is not None:
        spec["ingressClassName"] = klass
    if tls is not None:
        spec["tls"] = [{"hosts": [host], "secretName": tls}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def service(name: str, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def endpoints(name: str, port: int, ready: int = 1,
              namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}] * ready}


def ingress_class(name: str, controller: str, default: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": controller}}


def tls_secret(name: str, crt: bytes, key: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"tls.crt": base64.b64encode(crt).decode(),
                     "tls.key": base64.b64encode(key).decode()}}


# -- serve, as a process -------------------------------------------------------------------------


class Serve:
    """``python -m ingresslib serve ARGS`` with its access log (stdout) in a file."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log = tmp_path / "access.log"
        self._out = self.log.open("w")
        self.p = subprocess.Popen([sys.executable, "-m", "ingresslib", "serve", *args],
                                  stdout=self._out, stderr=subprocess.PIPE, text=True)
        self.ports: dict[str, int] = {}
        self.err = ""
        want = 1 + ("--tls-listen" in args) + ("--metrics-listen" in args)
        seen: list[str] = []
        assert self.p.stderr is not None
        with kill_after(self.p, 60):
            while len(self.ports) < want:
                line = self.p.stderr.readline()
                if not line:
                    break
                seen.append(line)
                if line.startswith("listening on "):
                    url = line.split()[2]
                    self.ports[url.split(":")[0]] = int(url.rsplit(":", 1)[1])
                elif line.startswith("metrics on "):
                    self.ports["metrics"] = int(line.split()[2].rsplit(":", 1)[1].split("/")[0])
        self.head = "".join(seen)
        if len(self.ports) < want:
            self.p.kill()
            raise AssertionError(f"serve did not start: {self.head}"
                                 f"{stderr_until_exit(self.p, 30)}")

    def stop(self) -> str:
        """SIGTERM; everything serve wrote on stderr."""
        if self.p.poll() is None:
            self.p.terminate()
        self.err = self.head + stderr_until_exit(self.p, 30)
        self._out.close()
        return self.err

    def access(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]


async def cluster(tmp_path: Path, *objects: dict[str, Any],
                  conf: Callable[[dict[str, Any]], None] | None = None) -> tuple[FakeKube, Path]:
    kube = FakeKube()
    url = await kube.start()
    for obj in objects:
        kube.put(obj)
    c = kubeconfig_dict(url)
    if conf is not None:
        conf(c)
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(c))
    return kube, path


async def get(port: int, host: str, path: str = "/") -> tuple[int, bytes]:
    c = await Client.open(port)
    try:
        r = await c.get(host, path)
        return r.status, r.body
    finally:
        await c.close()


async def until(pred: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """``pred`` true within ``timeout`` seconds (the bound the proxy must follow in)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await pred():
        assert loop.time() < deadline, "the proxy did not follow the cluster in time"
        await asyncio.sleep(0.05)


def status_is(port: int, host: str, want: int, path: str = "/"
              ) -> Callable[[], Awaitable[bool]]:
    async def pred() -> bool:
        return (await get(port, host, path))[0] == want
    return pred


def healthy(s: Serve) -> Callable[[], Awaitable[bool]]:
    return status_is(s.ports["metrics"], "localhost", 200, "/healthz")


async def post_status(port: int, host: str, size: int) -> int:
    c = await Client.open(port)
    try:
        return (await c.get(host, method="POST", body=b"x" * size)).status
    finally:
        await c.close()


async def metrics(port: int) -> str:
    return (await get(port, "localhost", "/metrics"))[1].decode()


def counted(text: str, host: str) -> dict[str, float]:
    """nginx_ingress_controller_requests by status, for ``host``."""
    out: dict[str, float] = {}
    for labels, value in re.findall(
            r'^nginx_ingress_controller_requests(?:_total)?\{([^}]*)\} (\S+)$', text, re.M):
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if lab.get("host") == host:
            out[lab["status"]] = out.get(lab["status"], 0.0) + float(value)
    return out


# -- 1. Ingress, endpoints, Service: followed live, metrics = access log ------------------------


@pytest.mark.asyncio
async def test_serve_follows_ingress_endpoints_and_service_changes(tmp_path: Path) -> None:
    web = await start_echo("web", "web-0")
    kube, cfg = await cluster(tmp_path, service("web"), endpoints("web", web.port))
    s = await asyncio.to_thread(Serve, tmp_path, "--kubernetes", "--kubeconfig", str(cfg),
                                "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
    http = s.ports["http"]
    try:
        await until(healthy(s), 10)
        assert (await get(http, "app.test"))[0] == 404
        # An Ingress added: served.
        kube.put(ingress("web", "app.test", "web"))
        await until(status_is(http, "app.test", 200))
        assert parse_echo((await get(http, "app.test"))[1])["service"] == "web"
        # Scaled to zero: 503; scaled up again: 200.
        kube.put(endpoints("web", web.port, ready=0))
        await until(status_is(http, "app.test", 503))
        kube.put(endpoints("web", web.port, ready=1))
        await until(status_is(http, "app.test", 200))
        # The Service deleted: 503 (ingress-nginx's answer for a missing Service); re-created,
        # its endpoints still there: 200 again.
        kube.delete("Service", "default", "web")
        await until(status_is(http, "app.test", 503))
        kube.put(service("web"))
        await until(status_is(http, "app.test", 200))
        # The metrics and the access log tell the same story, as they go (stdout is a pipe or
        # a file under a container runtime: each line written when the request ends).
        counts = counted(await metrics(s.ports["metrics"]), "app.test")
        logged: dict[str, float] = {}
        for line in s.access():
            m = re.search(r'"GET / HTTP/1.1" (\d{3}) ', line)
            if m and m.group(1) != "404":
                logged[m.group(1)] = logged.get(m.group(1), 0.0) + 1
        assert counts and {k: v for k, v in counts.items() if k != "404"} == logged, (
            counts, logged)
        # The Ingress removed: 404.
        kube.delete("Ingress", "default", "web")
        await until(status_is(http, "app.test", 404))
    finally:
        err = await asyncio.to_thread(s.stop)
        await kube.stop()
        await web.stop()
    # Nothing logged twice: one "cluster update" line per table swap (the first table and
    # six changes), each warning once, when it starts to hold.
    said = [ln.split(" ", 2)[2] for ln in err.splitlines() if ln[:2] == "20"]
    assert [ln.split(": ", 1)[1] for ln in said if "cluster update" in ln] == [
        "cluster update: 0 ingress(es), 1 service(s)",
        *["cluster update: 1 ingress(es), 1 service(s)"] * 3,
        "cluster update: 1 ingress(es), 0 service(s)",
        "cluster update: 1 ingress(es), 1 service(s)",
        "cluster update: 0 ingress(es), 1 service(s)"], said
    warnings = [ln for ln in said if ln.startswith("WARNING")]
    assert len(warnings) == 2 and "lists no endpoint" in warnings[0], warnings
    assert "Service default/web not found" in warnings[1], warnings
    assert "Traceback" not in err


@pytest.mark.asyncio
async def test_serve_keeps_the_last_good_table_through_watch_errors(tmp_path: Path) -> None:
    web = await start_echo("web", "web-0")
    kube, cfg = await cluster(tmp_path, ingress("web", "app.test", "web"), service("web"),
                              endpoints("web", web.port))
    s = await asyncio.to_thread(Serve, tmp_path, "--kubernetes", "--kubeconfig", str(cfg),
                                "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                "--access-log", "off")
    http = s.ports["http"]
    try:
        await until(healthy(s), 10)
        assert (await get(http, "app.test"))[0] == 200
        # Every watch dropped, the next request for Services refused, a line on the
        # EndpointSlice watch that is not JSON: the table stays.
        kube.fail_next("services", 500)
        kube.garbage("endpointslices")
        for plural in ("ingresses", "services", "endpointslices", "ingressclasses"):
            kube.drop(plural)
        for _ in range(3):
            assert (await get(http, "app.test"))[0] == 200
            assert (await get(s.ports["metrics"], "localhost", "/healthz"))[0] == 200
            await asyncio.sleep(0.1)
        # Once the watches are back, a change made meanwhile arrives.
        kube.put(ingress("web", "new.test", "web"))
        await until(status_is(http, "new.test", 200), 6)
        assert (await get(http, "app.test"))[0] == 404
        await kube.wait_for(lambda: not kube._fail.get("services"))  # the 500 was sent
        await asyncio.sleep(0.1)
    finally:
        err = await asyncio.to_thread(s.stop)
        await kube.stop()
        await web.stop()
    assert "HTTP 500" in err and "Traceback" not in err
    # Every failure names the API server, as the watcher's own client did (serve makes its
    # client itself: a line that was not JSON named none).
    failures = [ln for ln in err.splitlines() if " failed (" in ln]
    assert any("EndpointSlice watch failed" in ln for ln in failures), err
    assert all(f"API server http://127.0.0.1:{kube.port}" in ln for ln in failures), failures


# -- 2. a rotated TLS Secret: the new certificate for a new handshake ---------------------------


def _peer_cn(port: int, sni: str) -> str:
    import socket

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return str(cert.issuer.rfc4514_string())


@pytest.mark.asyncio
async def test_serve_serves_a_rotated_tls_secret_to_new_handshakes(tmp_path: Path) -> None:
    import trustme

    first = trustme.CA(organization_name="first").issue_cert("app.test")
    second = trustme.CA(organization_name="second").issue_cert("app.test")

    def pems(leaf: Any) -> tuple[bytes, bytes]:
        return (b"".join(b.bytes() for b in leaf.cert_chain_pems), leaf.private_key_pem.bytes())

    web = await start_echo("web", "web-0")
    kube, cfg = await cluster(tmp_path, ingress("web", "app.test", "web", tls="app-tls"),
                              service("web"), endpoints("web", web.port),
                              tls_secret("app-tls", *pems(first)))
    s = await asyncio.to_thread(Serve, tmp_path, "--kubernetes", "--kubeconfig", str(cfg),
                                "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
                                "--metrics-listen", "127.0.0.1:0", "--access-log", "off")
    try:
        await until(healthy(s), 10)

        async def issued_by(org: str) -> bool:
            return org in await asyncio.to_thread(_peer_cn, s.ports["https"], "app.test")

        await until(lambda: issued_by("first"))
        kube.put(tls_secret("app-tls", *pems(second)))
        await until(lambda: issued_by("second"))
    finally:
        err = await asyncio.to_thread(s.stop)
        await kube.stop()
        await web.stop()
    assert "Traceback" not in err


# -- 3. an IngressClass made default; a namespace-restricted watch ------------------------------


@pytest.mark.asyncio
async def test_serve_follows_a_class_made_default_within_one_namespace(tmp_path: Path) -> None:
    web = await start_echo("web", "web-0")
    other = await start_echo("other", "other-0")
    kube, cfg = await cluster(
        tmp_path, ingress_class("ours", "ingresslib.io/controller"),
        ingress("web", "app.test", "web", namespace="shop"),          # no class
        service("web", "shop"), endpoints("web", web.port, namespace="shop"),
        ingress("web", "other.test", "web", klass="ours"),             # namespace default
        service("web"), endpoints("web", other.port))
    cm = tmp_path / "cm.yaml"
    cm.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n'
                  'data: {proxy-body-size: "5"}\n')
    s = await asyncio.to_thread(Serve, tmp_path, "--kubernetes", "--kubeconfig", str(cfg),
                                "--namespace", "shop", "--controller", "ingresslib.io/controller",
                                "--config", str(cm), "--reload-interval", "0.05",
                                "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                "--access-log", "off")
    http = s.ports["http"]
    try:
        await until(healthy(s), 10)
        # An Ingress without a class is not ours until our class is the default.
        assert (await get(http, "app.test"))[0] == 404
        kube.put(ingress_class("ours", "ingresslib.io/controller", default=True))
        await until(status_is(http, "app.test", 200))
        assert parse_echo((await get(http, "app.test"))[1])["service"] == "web"
        # Another namespace's Ingress is never served, whatever its class.
        assert (await get(http, "other.test"))[0] == 404
        kube.put(ingress("web2", "app2.test", "web", namespace="shop", klass="ours"))
        await until(status_is(http, "app2.test", 200))
        assert (await get(http, "other.test"))[0] == 404
        # The controller's ConfigMap edited: applied live, the cluster's routes kept.
        assert await post_status(http, "app.test", 10) == 413
        cm.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n'
                      'data: {proxy-body-size: "1m"}\n')
        st = cm.stat()  # a later mtime, whatever the file system's clock granularity
        os.utime(cm, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))

        async def big_ok() -> bool:
            return await post_status(http, "app.test", 10) == 200

        await until(big_ok)
        assert (await get(http, "app2.test"))[0] == 200
        kube.delete("Ingress", "shop", "web2")
        await until(status_is(http, "app2.test", 404))
        assert await post_status(http, "app.test", 10) == 200
        # Only the namespace was asked for (IngressClasses are cluster-scoped).
        assert {r.namespace for r in kube.requests if r.plural != "ingressclasses"} == {"shop"}
    finally:
        await asyncio.to_thread(s.stop)
        await kube.stop()
        await web.stop()
        await other.stop()


# -- 4. credentials and timeouts of the client ---------------------------------------------------


def _plugin(tmp_path: Path, status: dict[str, Any],
            api_version: str = "client.authentication.k8s.io/v1") -> Callable[[dict[str, Any]],
                                                                              None]:
    """An exec credential plugin at tmp_path/bin/creds answering ``status``, and the kubeconfig
    edit that names it (relative to the kubeconfig's folder, as kubectl reads it)."""
    plugin = tmp_path / "bin" / "creds"
    plugin.parent.mkdir(exist_ok=True)
    plugin.write_text(
        f"#!{sys.executable}\nimport json\n"
        f"print(json.dumps({{'apiVersion': {api_version!r}, 'kind': 'ExecCredential', "
        f"'status': {status!r}}}))\n")
    plugin.chmod(0o755)

    def conf(c: dict[str, Any]) -> None:
        c["users"] = [{"name": "nobody", "user": {"exec": {
            "apiVersion": api_version, "command": "./bin/creds", "interactiveMode": "Never"}}}]
    return conf


@pytest.mark.asyncio
async def test_serve_runs_an_exec_plugin_of_api_version_v1(tmp_path: Path) -> None:
    # Regression: ClusterWatcher ran client.authentication.k8s.io/v1 plugins (EKS, GKE,
    # kubelogin) when it made its own client, but serve makes the client (before listening)
    # from load_kube_config's configuration as lightkube read it: every request failed with
    # "auth exec api version client.authentication.k8s.io/v1 not implemented", retried for
    # ever, /healthz never ready, every request 404.
    web = await start_echo("web", "web-0")
    kube, cfg = await cluster(tmp_path, ingress("web", "app.test", "web"), service("web"),
                              endpoints("web", web.port),
                              conf=_plugin(tmp_path, {"token": "s3cr3t"}))
    s = await asyncio.to_thread(Serve, tmp_path, "--kubernetes", "--kubeconfig", str(cfg),
                                "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                "--access-log", "off")
    try:
        await until(healthy(s), 5)
        assert (await get(s.ports["http"], "app.test"))[0] == 200
    finally:
        err = await asyncio.to_thread(s.stop)
        await kube.stop()
        await web.stop()
    assert "not implemented" not in err


@pytest.mark.asyncio
async def test_an_exec_plugin_answering_a_client_certificate_is_said_in_words(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Regression: a plugin answering with a client certificate (client-go's other form of
    # ExecCredential status) raised KeyError: 'token' inside lightkube, and the log said only
    # "Service list failed (KeyError: 'token'; ...)", on every retry.
    from ingresslib._kube import WATCHED_KINDS, Backoff, ClusterWatcher, load_kube_config

    kube, cfg = await cluster(tmp_path, service("web"), conf=_plugin(
        tmp_path, {"clientCertificateData": "-----BEGIN CERTIFICATE-----\n",
                   "clientKeyData": "-----BEGIN PRIVATE KEY-----\n"}))
    stop = asyncio.Event()
    w = ClusterWatcher(lambda res: None, config=load_kube_config(cfg), seed=1,
                       kinds=tuple(k for k in WATCHED_KINDS if k.kind == "Service"),
                       backoff=Backoff(initial=0.05, maximum=0.05))
    task = asyncio.create_task(w.run(stop))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not w.stats.last_error:
            assert loop.time() < deadline
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await kube.stop()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "answered with a client certificate" in said and "bin/creds" in said, said
    assert "KeyError" not in said
    assert "client certificate" in w.stats.last_error and not kube.requests
    # A failure of the credentials, counted as lightkube's own (a plugin that exits 1) is,
    # not as garbage on the stream.
    assert w.stats.stream_errors >= 1 and w.stats.garbage == 0


@pytest.mark.parametrize("answer, words", [
    (b"not json", "did not answer with JSON"),
    (b"[]", "without a status"),
    (b'{"status": {"token": ""}}', "answered no token"),
    (b'{"status": {"expirationTimestamp": "2030-01-01T00:00:00Z"}}', "answered no token"),
])
def test_exec_plugin_answers_without_a_token_are_named(answer: bytes, words: str) -> None:
    from ingresslib._kube import ExecCredentialError, _exec_token

    with pytest.raises(ExecCredentialError, match=words):
        _exec_token("creds", answer)
    assert _exec_token("creds", b'{"status": {"token": "t"}}') == "t"


@pytest.mark.asyncio
async def test_the_watchers_client_waits_for_a_slow_list_as_the_api_server_does(
        tmp_path: Path) -> None:
    # Regression: lightkube's default of 10 s for every read failed a list whose answer took
    # longer to start (the unpaged fallback list of a large cluster: the API server reads it
    # all before answering), again on every retry; client-go sets no limit, the API server
    # ends a request itself after 60 s (--request-timeout) with a 504 that says so.
    from ingresslib._kube import WATCHED_KINDS, ClusterWatcher, load_kube_config

    kube, cfg = await cluster(tmp_path, service("web"))
    stop = asyncio.Event()
    w = ClusterWatcher(lambda res: None, config=load_kube_config(cfg), seed=1,
                       kinds=tuple(k for k in WATCHED_KINDS if k.kind == "Service"))
    task = asyncio.create_task(w.run(stop))
    try:
        await asyncio.wait_for(w.synced.wait(), 5)
        http = w._run_client._client._client
        assert http.timeout.read is not None and http.timeout.read > 60
        assert http.timeout.connect == 10  # lightkube's, unchanged
        assert w._run_client._client._watch_timeout.read is None  # watches: no read limit
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await kube.stop()
