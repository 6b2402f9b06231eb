"""Session 36, x52: ``serve --kubernetes --default-ssl-certificate NS/NAME`` reads that Secret
whatever its type, as ingress-nginx does (internal/ingress/controller/store/store.go: its
Secret informer lists every type, and ``secrEventHandler`` syncs the Secret whose key is
``defaultSSLCertificate``; nginx.go ``getDefaultSSLCertificate`` reads its tls.crt/tls.key),
and as ``serve -f`` reads it from files. It was read only when of ``type:
kubernetes.io/tls`` (the TLS watch's field selector): an Opaque one holding tls.crt/tls.key
was never fetched, and the handshake got the generated certificate.

The one Secret is watched by name (``fieldSelector=metadata.name=NAME,
type!=kubernetes.io/tls`` in its namespace: what RBAC ``resourceNames`` can grant, the API
server taking the name of a list/watch from an exact ``metadata.name`` field selector,
k8s.io/apiserver requestinfo.go), nothing more is listed for anyone, and a ``kubernetes.io/tls``
default Secret still comes with the TLS watch as before. Also pinned: the other Secrets
ingress-nginx reads by name (an Opaque ``auth-tls-secret`` holding ca.crt alone, an Opaque
``proxy-ssl-secret``) come with the watch of the named Opaque Secrets.

The fake API server (tests/_fake_kube.py) runs on 127.0.0.1; its field selector honours
``metadata.name`` and ``!=`` as the API server does (x52 wrote it here; the lead moved it into
the fake).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme

import _fake_kube
from _fake_kube import FakeKube, kubeconfig_dict

NS, NAME = "ingresslib", "default-cert"
REF = f"{NS}/{NAME}"
_SELF_SELECTOR = f"metadata.name={NAME},type!=kubernetes.io/tls"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _secret(name: str, type_: str, data: dict[str, bytes], ns: str = NS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": ns},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def _tls_data(leaf: trustme.LeafCert) -> dict[str, bytes]:
    return {"tls.crt": leaf.cert_chain_pems[0].bytes(), "tls.key": leaf.private_key_pem.bytes()}


def _secret_requests(kube: FakeKube) -> set[tuple[str | None, str]]:
    """``(namespace, fieldSelector)`` of every list and watch of Secrets the server got."""
    return {(r.namespace, r.query.get("fieldSelector", "")) for r in kube.requests
            if r.plural == "secrets"}


# -- serve: the Opaque default Secret, followed ----------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("extra", [(), ("--no-auth-secrets",)], ids=["auth", "no-auth"])
async def test_an_opaque_default_secret_is_served_and_followed(
        ca: trustme.CA, tmp_path: Path, extra: tuple[str, ...]) -> None:
    from test_default_cert_s19 import FAKE, _names, _until
    from test_serve_cli import _start_serve, _stop

    kube = FakeKube()
    url = await kube.start()
    # What ``kubectl create secret generic default-cert --from-file=tls.crt --from-file=tls.key``
    # makes: Opaque. Another Opaque Secret of that namespace must never be fetched.
    kube.put(_secret(NAME, "Opaque", _tls_data(ca.issue_cert("one.example"))))
    kube.put(_secret("passwords", "Opaque", {"auth": b"u:p"}))
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps(kubeconfig_dict(url)))
    p, ports = await asyncio.to_thread(
        _start_serve, "--kubernetes", "--kubeconfig", str(cfg), "--listen", "127.0.0.1:0",
        "--tls-listen", "127.0.0.1:0", "--access-log", "off", "--default-ssl-certificate", REF,
        *extra)
    port = ports["https"]
    try:
        assert await asyncio.to_thread(_until, port, {"one.example"}) == {"one.example"}
        assert await asyncio.to_thread(_names, port, "unknown.test") == {"one.example"}
        kube.put(_secret(NAME, "Opaque", _tls_data(ca.issue_cert("two.example"))))
        assert await asyncio.to_thread(_until, port, {"two.example"}) == {"two.example"}
        kube.delete("Secret", NS, NAME)
        assert await asyncio.to_thread(_until, port, FAKE) == FAKE
        # Deleted and re-created as a kubernetes.io/tls Secret: the TLS watch's, as before.
        kube.put(_secret(NAME, "kubernetes.io/tls", _tls_data(ca.issue_cert("three.example"))))
        assert await asyncio.to_thread(_until, port, {"three.example"}) == {"three.example"}
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
    assert "Traceback" not in err, err
    # Not widened: the TLS watch (every namespace), the one Secret by name in its own
    # namespace, and no list of Opaque Secrets (no Ingress names one).
    assert _secret_requests(kube) == {(None, "type=kubernetes.io/tls"), (NS, _SELF_SELECTOR)}


# -- the watcher: the default Secret's own watch, and the named Opaque Secrets -----------------


P = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, annotations: dict[str, str], ns: str = NS) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"rules": [{"host": f"{name}.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Any]:
    from _fake_kube_s14 import FakeKubeS14
    from test_kube import running_harness

    async with running_harness(FakeKubeS14()) as harness:
        yield harness


def _stored(h: Any) -> dict[str, str]:
    """name -> type of the Secrets in the watcher's store."""
    return {s.metadata.name: s.type for s in h.watcher.store.snapshot().secrets}


def _kinds() -> tuple[Any, ...]:
    from ingresslib._kube import AUTH_SECRETS, WATCHED_KINDS, with_default_secret

    return with_default_secret((*WATCHED_KINDS, AUTH_SECRETS), NS, NAME)


@pytest.mark.network
@pytest.mark.asyncio
async def test_the_default_secret_stays_when_an_ingress_stops_naming_it(h: Any) -> None:
    # The Opaque default Secret is also an Ingress's auth-tls-secret: the auth watch (Opaque
    # Secrets named by Ingresses) must leave it to its own watch. It listed it as its own, and
    # dropped it from the store when the Ingress stopped naming it, or at its next list.
    from test_kube import eventually

    h.kube.put(_secret(NAME, "Opaque", {"tls.crt": b"c", "tls.key": b"k", "ca.crt": b"a"}))
    h.kube.put(_secret("users", "Opaque", {"auth": b"u:p"}))
    h.kube.put(_ingress("mtls", {P + "auth-tls-secret": REF, P + "auth-type": "basic",
                                 P + "auth-secret": "users"}))
    h.start(kinds=_kinds(), auth_refs=lambda res: _auth_refs(res))
    await h.synced()
    await h.watching("secrets", 3)
    assert _stored(h) == {NAME: "Opaque", "users": "Opaque"}
    # The Ingress no longer names it (nor any other Secret): the auth watch stops.
    h.kube.put(_ingress("mtls", {}))
    await eventually(lambda: "users" not in _stored(h))
    assert _stored(h) == {NAME: "Opaque"}
    # Named again: the auth watch lists afresh; then its history is compacted (a re-list).
    h.kube.put(_ingress("mtls", {P + "auth-tls-secret": REF, P + "auth-type": "basic",
                                 P + "auth-secret": "users"}))
    await eventually(lambda: "users" in _stored(h))
    h.kube.gone("secrets")
    h.kube.put(_secret(NAME, "Opaque", {"tls.crt": b"c2", "tls.key": b"k", "ca.crt": b"a"}))
    await eventually(lambda: _default_crt(h) == b"c2")
    assert _stored(h) == {NAME: "Opaque", "users": "Opaque"}
    h.kube.delete("Secret", NS, NAME)
    await eventually(lambda: NAME not in _stored(h))
    # No Opaque Secret is fetched by name: the default one is its watch's alone.
    assert ("secrets", NS, NAME) not in h.kube.gets


def _auth_refs(res: Any) -> Any:
    from ingresslib._kube import auth_secret_refs

    return auth_secret_refs(res.ingresses) - {(NS, NAME)}


def _default_crt(h: Any) -> bytes | None:
    return next((s.get_bytes("tls.crt") for s in h.watcher.store.snapshot().secrets
                 if s.metadata.name == NAME), None)


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_tls_default_secret_comes_with_the_tls_watch_alone(h: Any) -> None:
    # A kubernetes.io/tls default Secret: as before, the TLS watch's; the watch by name sees
    # nothing of it (its field selector leaves that type out), so the two never share it.
    from test_kube import eventually

    h.kube.put(_secret(NAME, "kubernetes.io/tls", {"tls.crt": b"c", "tls.key": b"k"}))
    h.start(kinds=_kinds())
    await h.synced()
    assert _stored(h) == {NAME: "kubernetes.io/tls"}
    assert h.watcher.stats.resource_versions.keys() >= {"Secret", "default Secret"}
    # Deleted and re-created as Opaque: the watch by name's; and back.
    h.kube.delete("Secret", NS, NAME)
    h.kube.put(_secret(NAME, "Opaque", {"tls.crt": b"o", "tls.key": b"k"}))
    await eventually(lambda: _stored(h) == {NAME: "Opaque"})
    h.kube.delete("Secret", NS, NAME)
    h.kube.put(_secret(NAME, "kubernetes.io/tls", {"tls.crt": b"t", "tls.key": b"k"}))
    await eventually(lambda: _stored(h) == {NAME: "kubernetes.io/tls"})
    assert _default_crt(h) == b"t"


def test_the_default_secrets_watch_asks_for_that_secret_only() -> None:
    from ingresslib._kube import ClusterWatcher, _selected, _selectors, named_secret

    spec = named_secret(NS, NAME)
    assert _selectors(spec)["fields"]["metadata.name"] == NAME
    from lightkube.core.selector import build_selector

    assert build_selector(_selectors(spec)["fields"], for_fields=True) == _SELF_SELECTOR
    # Checked again on arrival (a server ignoring the selector must not bring other Secrets).
    assert _selected(spec, _secret(NAME, "Opaque", {}))
    assert not _selected(spec, _secret("other", "Opaque", {}))
    assert not _selected(spec, _secret(NAME, "kubernetes.io/tls", {}))
    # Watched in its own namespace, whatever the watcher's (every namespace here).
    watcher = ClusterWatcher(lambda res: None, client=object(), kinds=(spec,))
    assert watcher._namespace_of(spec) == NS


# -- the Secrets ingress-nginx reads by name for other purposes ------------------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_opaque_auth_tls_and_proxy_ssl_secrets_come_with_the_named_secrets_watch(
        h: Any) -> None:
    # ingress-nginx reads auth-tls-secret (ca.crt alone, as ``kubectl create secret generic
    # ca --from-file=ca.crt`` makes it) and proxy-ssl-secret by name, whatever their type
    # (store.go ``syncSecret`` of the Ingresses' annotations): here the watch of the Opaque
    # Secrets the served Ingresses name brings both, and no other Opaque Secret.
    from ingresslib._kube import AUTH_SECRETS, WATCHED_KINDS

    h.kube.put(_secret("ca", "Opaque", {"ca.crt": b"a"}, ns="shop"))
    h.kube.put(_secret("backend", "Opaque", {"ca.crt": b"a", "tls.crt": b"c", "tls.key": b"k"},
                       ns="shop"))
    h.kube.put(_secret("unnamed", "Opaque", {"auth": b"u:p"}, ns="shop"))
    h.kube.put(_ingress("mtls", {P + "auth-tls-secret": "shop/ca",
                                 P + "proxy-ssl-secret": "shop/backend"}, ns="shop"))
    h.start(kinds=(*WATCHED_KINDS, AUTH_SECRETS))
    await h.synced()
    assert _stored(h) == {"ca": "Opaque", "backend": "Opaque"}


# -- explain --no-auth-secrets answers as serve --kubernetes --no-auth-secrets reads ----------


def test_explain_no_auth_secrets_keeps_an_opaque_default_secret(ca: trustme.CA) -> None:
    # serve --kubernetes --no-auth-secrets reads the default Secret whatever its type (its own
    # watch): explain --no-auth-secrets names its certificate too, not the generated one.
    import ingresslib
    from ingresslib import Resources

    leaf = ca.issue_cert("one.example")
    res = Resources.from_dicts([_secret(NAME, "Opaque", _tls_data(leaf))])
    for no_auth in (False, True):
        doc = ingresslib.explain(res, "https://unknown.test/", default_ssl_certificate=REF,
                                 no_auth_secrets=no_auth)
        assert doc["tls"]["default_certificate"]["secret"] == REF, (no_auth, doc["tls"])
    # Another Opaque Secret is still not read (the routes of basic auth: 503).
    res = Resources.from_dicts([_secret(NAME, "Opaque", _tls_data(leaf)),
                                _secret("users", "Opaque", {"auth": b"u:p"}, ns="default")])
    from ingresslib._explain_api import _tls_secrets_only

    assert [s.metadata.name for s in _tls_secrets_only(res, REF).secrets] == [NAME]
    assert _tls_secrets_only(res).secrets == ()


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_refused_default_secret_watch_does_not_hold_back_the_first_table(h: Any) -> None:
    # serve --namespace web --default-ssl-certificate other/NAME with a Role in namespace web:
    # the API server refuses the watch by name in namespace other (403). The first table waits
    # for that watch's first list attempt only (lead, session 36): before, it waited for a
    # list that never succeeds, and serve never served (it served with the generated
    # certificate before x52 added the watch).
    from ingresslib._kube import WATCHED_KINDS, with_default_secret

    forbidden = "/namespaces/other/secrets"
    respond = h.kube._respond
    refused: list[str] = []

    async def rbac(target: str, writer: Any) -> None:
        if forbidden in target.split("?", 1)[0]:
            refused.append(target)
            await _fake_kube._send_json(writer, 403, _fake_kube._status(
                403, "Forbidden", 'secrets is forbidden: User "system:serviceaccount:web:ing" '
                'cannot list resource "secrets" in API group "" in the namespace "other"'))
            return
        await respond(target, writer)

    h.kube._respond = rbac
    h.kube.put(_ingress("site", {}, ns="web"))
    h.start(kinds=with_default_secret(WATCHED_KINDS, "other", NAME), namespace="web")
    await h.synced()
    assert refused and "fieldSelector=metadata.name" in refused[0]
    assert [i.metadata.name for i in h.watcher.store.snapshot().ingresses] == ["site"]
