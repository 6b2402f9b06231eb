"""Session 36, x55: ``serve --kubernetes`` without ``--tls-listen`` reads the
``kubernetes.io/tls`` Secrets the served Ingresses name (``proxy-ssl-secret``,
``auth-tls-secret``), as ingress-nginx does: its Secret informer lists every type
(internal/ingress/controller/store/store.go), and ``syncSecret`` / ``GetAuthCertificate`` read
the Secret an Ingress's proxyssl / authtls annotation names, whatever its type. What
cert-manager and ``kubectl create secret tls`` make is ``kubernetes.io/tls``; ``serve -f`` reads
it from its file.

Without ``--tls-listen`` the TLS watch does not run (least privilege), and the watch of the
named Secrets listed ``type: Opaque`` only: the route answered 503. Now a second watch of the
named Secrets, ``type=kubernetes.io/tls``, runs beside it (``_kube.with_auth_secrets``), sharing
``AuthSecrets``' bookkeeping (which names are wanted, a newly named one fetched once by name).
With ``--tls-listen`` the TLS watch brings them, as before, and nothing else is listed.

The fake API server runs on 127.0.0.1, its field selector honouring ``type`` (``=``, ``!=``)
and ``metadata.name`` as the API server does (tests/_fake_kube.py's ``_selector``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme

from _fake_kube import FakeKube, kubeconfig_dict
from test_x52_s36 import _secret

P = "nginx.ingress.kubernetes.io/"
NS = "shop"
TLS = "kubernetes.io/tls"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _backend_secret(ca: trustme.CA, type_: str = TLS) -> dict[str, Any]:
    """``proxy-ssl-secret``'s Secret: the CA the backend's certificate is checked against, and
    the client certificate the proxy presents (``kubectl create secret tls`` plus ca.crt, as
    cert-manager writes it)."""
    client = ca.issue_cert("proxy.test")
    return _secret("backend", type_, {"ca.crt": ca.cert_pem.bytes(),
                                      "tls.crt": client.cert_chain_pems[0].bytes(),
                                      "tls.key": client.private_key_pem.bytes()}, ns=NS)


def _objects(port: int) -> list[dict[str, Any]]:
    """An Ingress of a.test to Service web:443, whose one endpoint is 127.0.0.1:``port``,
    over HTTPS checked with ``proxy-ssl-secret`` shop/backend."""
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"ports": [{"port": 443, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "namespace": NS,
                      "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}],
         "ports": [{"port": port}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web", "namespace": NS, "annotations": {
             P + "backend-protocol": "HTTPS", P + "proxy-ssl-secret": f"{NS}/backend",
             P + "proxy-ssl-verify": "on", P + "proxy-ssl-name": "backend.test"}},
         "spec": {"rules": [{"host": "a.test", "http": {"paths": [
             {"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": "web", "port": {"number": 443}}}}]}}]}},
    ]


async def _https_backend(ca: trustme.CA) -> asyncio.Server:
    """An HTTPS backend on 127.0.0.1 (certificate of backend.test) that answers ``ok``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("backend.test").configure_cert(ctx)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=ctx)


async def _status_until(port: int, want: int, timeout: float = 20.0) -> int:
    """GET http://a.test/ through serve until it answers ``want`` (the last status)."""
    from tests._server_helpers import Client

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status = 0
    while loop.time() < deadline:
        c = await Client.open(port)
        try:
            status = (await c.get("a.test", "/")).status
        finally:
            await c.close()
        if status == want:
            break
        await asyncio.sleep(0.1)
    return status


def _secret_requests(kube: FakeKube) -> list[tuple[str | None, str]]:
    """``(namespace, fieldSelector)`` of the lists of Secrets the server got."""
    return sorted((r.namespace, r.query.get("fieldSelector", "")) for r in kube.requests
                  if r.plural == "secrets" and not r.watch and "name" not in r.query)


# -- serve --kubernetes: proxy-ssl-secret of type kubernetes.io/tls ---------------------------


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("extra, want, lists", [
    ((), 200, [(None, "type=Opaque"), (None, f"type={TLS}")]),
    (("--tls-listen", "127.0.0.1:0"), 200, [(None, "type=Opaque"), (None, f"type={TLS}")]),
    # --no-auth-secrets: no named Secret is read; the route answers 503, as documented.
    (("--no-auth-secrets",), 503, []),
], ids=["http-only", "tls-listen", "no-auth-secrets"])
async def test_a_tls_proxy_ssl_secret_reaches_the_backend(
        ca: trustme.CA, tmp_path: Path, extra: tuple[str, ...], want: int,
        lists: list[tuple[str | None, str]]) -> None:
    from test_serve_cli import _start_serve, _stop

    backend = await _https_backend(ca)
    kube = FakeKube()
    url = await kube.start()
    for obj in _objects(backend.sockets[0].getsockname()[1]):
        kube.put(obj)
    kube.put(_backend_secret(ca))
    # Neither named nor to be kept: a Secret of each type no Ingress names.
    kube.put(_secret("unnamed-tls", TLS, {"tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    kube.put(_secret("unnamed", "Opaque", {"auth": b"u:p"}, ns=NS))
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps(kubeconfig_dict(url)))
    p, ports = await asyncio.to_thread(
        _start_serve, "--kubernetes", "--kubeconfig", str(cfg), "--listen", "127.0.0.1:0",
        "--access-log", "off", *extra)
    try:
        assert await _status_until(ports["http"], want) == want
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
        backend.close()
        await backend.wait_closed()
    assert "Traceback" not in err, err
    # Nothing widened: one list per watch (the Opaque named Secrets, and the kubernetes.io/tls
    # ones: the TLS watch with --tls-listen, else the named ones'); none by name.
    assert _secret_requests(kube) == lists
    assert not [r for r in kube.requests if r.plural == "secrets"
                and "metadata.name" in r.query.get("fieldSelector", "")]


# -- the watcher: the named kubernetes.io/tls Secrets, followed --------------------------------


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Any]:
    from _fake_kube_s14 import FakeKubeS14
    from test_kube import running_harness

    async with running_harness(FakeKubeS14()) as harness:
        yield harness


def _stored(h: Any) -> dict[str, str]:
    """name -> type of the Secrets in the watcher's store."""
    return {s.metadata.name: s.type for s in h.watcher.store.snapshot().secrets}


def _ingress(name: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": NS,
                         "annotations": {P + "auth-tls-secret": f"{NS}/{secret}"}},
            "spec": {"rules": [{"host": f"{name}.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def _http_only_kinds() -> tuple[Any, ...]:
    """What serve --kubernetes watches without --tls-listen (no TLS watch)."""
    from ingresslib._kube import WATCHED_KINDS, with_auth_secrets

    return with_auth_secrets(tuple(k for k in WATCHED_KINDS if k.kind != "Secret"))


@pytest.mark.network
@pytest.mark.asyncio
async def test_named_tls_secrets_are_kept_followed_and_dropped(h: Any) -> None:
    from test_kube import eventually

    h.kube.put(_secret("ca", TLS, {"ca.crt": b"a", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_secret("later", TLS, {"ca.crt": b"b", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_secret("unnamed", TLS, {"tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_ingress("mtls", "ca"))
    h.start(kinds=_http_only_kinds())
    await h.synced()
    # The first table waited for the lists of both watches of named Secrets.
    assert _stored(h) == {"ca": TLS}
    await h.watching("secrets", 2)
    # Named after the lists: fetched by name, once (not once per watch).
    h.kube.put(_ingress("other", "later"))
    await eventually(lambda: "later" in _stored(h))
    assert h.kube.get_count("secrets") == 1
    # Followed: deleted and re-created as Opaque (the Opaque watch's), then back.
    h.kube.delete("Secret", NS, "ca")
    h.kube.put(_secret("ca", "Opaque", {"ca.crt": b"o"}, ns=NS))
    await eventually(lambda: _stored(h).get("ca") == "Opaque")
    h.kube.delete("Secret", NS, "ca")
    h.kube.put(_secret("ca", TLS, {"ca.crt": b"t", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    await eventually(lambda: _stored(h).get("ca") == TLS)
    # No longer named: dropped from the store; the unnamed one never came.
    h.kube.put(_ingress("mtls", "gone"))
    await eventually(lambda: _stored(h) == {"later": TLS})


class _Hooks:
    """An ``AuthWatch`` over a store: Secrets fetched from ``cluster`` (the first ``get``
    fails, as when the API server restarts), kept by the watch of their type."""

    def __init__(self, cluster: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.cluster = cluster
        self.store: Any = None
        self.gets = 0

    def refs(self, res: Any) -> Any:
        from ingresslib._kube_auth import auth_secret_refs

        return auth_secret_refs(res.ingresses)

    def refs_failed(self, exc: Exception) -> None:
        raise AssertionError(exc)

    async def get(self, namespace: str, name: str) -> Any:
        self.gets += 1
        if self.gets == 1:
            raise OSError("connection refused")
        return self.cluster[(namespace, name)]

    def retry_get(self, exc: Exception) -> bool:
        return True

    def keep(self, obj: Any) -> None:
        self.store.apply("ADDED", obj)

    def owner(self, obj: Any) -> str | None:
        return {"Opaque": "opaque", TLS: "tls"}.get(obj["type"])

    def retry_delay(self, failures: int) -> float:
        return 0.0

    def wake(self) -> None:
        pass


async def _settle() -> None:
    """Let the ``get`` tasks ``refresh`` started run (no I/O: a few turns of the loop)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_list_of_one_type_does_not_forget_a_failed_get_of_the_other() -> None:
    # A kubernetes.io/tls Secret named after both lists, whose get fails: a re-list of the
    # Opaque watch says nothing of it (another type), so the get is retried; before, any list
    # forgot every failed get ("the list brings them"), and the Secret never came.
    import ingresslib
    from ingresslib._kube_auth import AuthSecrets

    later = _secret("later", TLS, {"ca.crt": b"b", "tls.crt": b"c", "tls.key": b"k"}, ns=NS)

    async def run() -> None:
        store = ingresslib.ResourceStore()
        hooks = _Hooks({(NS, "later"): later})
        hooks.store = store
        auth = AuthSecrets(store, hooks, watches=("opaque", "tls"))  # type: ignore[arg-type]
        store.apply("ADDED", _ingress("mtls", "ca"))
        await auth.refresh()
        for watch in ("opaque", "tls"):
            auth.tried(watch)
            auth.listed(watch)
        assert auth.ready
        store.apply("ADDED", _ingress("other", "later"))
        await auth.refresh()
        await _settle()   # the get failed
        assert hooks.gets == 1
        auth.listed("opaque")
        await auth.refresh()  # the retry is due
        await _settle()
        assert hooks.gets == 2
        assert [s.metadata.name for s in store.snapshot().secrets] == ["later"]
        # Both watches listed since: nothing left to fetch.
        store.apply("ADDED", _ingress("third", "missing"))
        await auth.refresh()
        await _settle()
        hooks.gets = 0
        auth.listed("opaque")
        auth.listed("tls")
        await auth.refresh()
        await _settle()
        assert hooks.gets == 0

    asyncio.run(run())


def test_the_first_table_waits_for_every_named_secrets_watch() -> None:
    import ingresslib
    from ingresslib._kube_auth import AuthSecrets

    async def run() -> None:
        store = ingresslib.ResourceStore()
        auth = AuthSecrets(store, _Hooks({}), watches=("opaque", "tls"))  # type: ignore[arg-type]
        store.apply("ADDED", _ingress("mtls", "ca"))
        await auth.refresh()
        assert not auth.ready
        auth.tried("opaque")
        assert not auth.ready
        auth.tried("tls")
        assert auth.ready

    asyncio.run(run())


def test_the_tls_watch_of_named_secrets_only_without_the_tls_watch() -> None:
    from ingresslib._kube import AUTH_SECRETS, AUTH_TLS_SECRETS, WATCHED_KINDS, with_auth_secrets

    assert with_auth_secrets(WATCHED_KINDS) == (*WATCHED_KINDS, AUTH_SECRETS)
    bare = tuple(k for k in WATCHED_KINDS if k.kind != "Secret")
    assert with_auth_secrets(bare) == (*bare, AUTH_SECRETS, AUTH_TLS_SECRETS)
