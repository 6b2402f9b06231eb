"""Session 36, x57: review of x55 (the named ``kubernetes.io/tls`` Secrets without
``--tls-listen``: ``_kube.AUTH_TLS_SECRETS`` beside ``AUTH_SECRETS``, one ``AuthSecrets`` for
both watches).

``explain --no-auth-secrets`` modelled ``serve --kubernetes --no-auth-secrets`` as reading every
``kubernetes.io/tls`` Secret, which serve does only with its HTTPS listener (``--tls-listen``:
the TLS watch). For an http:// URL without ``--tls`` / ``--tls-listen`` serve reads no Secret
at all then: a ``proxy-ssl-secret`` of that type answers 503 there, and explain said 200.
Checked against serve itself, on a fake API server on 127.0.0.1.

The watcher's two watches of named Secrets are checked where they meet: a Role without
``secrets`` (both lists refused) does not hold the first table back; a 410 re-list of one
watch leaves the other's Secret; a Secret deleted and re-created with the other type while
named, un-named and named again, comes back by the watch of its type; with a TLS watch the
Secret requests are those of before x55.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import trustme

from _fake_kube import FakeKube, kubeconfig_dict
from test_x52_s36 import _secret
from test_x55_s36 import (_backend_secret, _http_only_kinds, _https_backend, _ingress,
                          _objects, _stored)

NS = "shop"
TLS = "kubernetes.io/tls"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _first_table_status(port: int, timeout: float = 20.0) -> int:
    """GET http://a.test/ through serve until its first table is in (before it, the table is
    empty: 404), and what serve then answers."""
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
        if status != 404:
            break
        await asyncio.sleep(0.1)
    return status


# -- explain --no-auth-secrets answers as serve does -------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("extra, options", [
    # No HTTPS listener: serve watches no Secret at all (no TLS watch, no named ones).
    ((), {}),
    # With --tls-listen the TLS watch brings every kubernetes.io/tls Secret, the named one too.
    (("--tls-listen", "127.0.0.1:0"), {"tls": True}),
], ids=["http-only", "tls-listen"])
async def test_explain_no_auth_secrets_answers_as_serve(
        ca: trustme.CA, tmp_path: Path, extra: tuple[str, ...], options: dict[str, Any]) -> None:
    import ingresslib
    from test_serve_cli import _start_serve, _stop

    backend = await _https_backend(ca)
    objects = [*_objects(backend.sockets[0].getsockname()[1]), _backend_secret(ca)]
    kube = FakeKube()
    url = await kube.start()
    for obj in objects:
        kube.put(obj)
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps(kubeconfig_dict(url)))
    p, ports = await asyncio.to_thread(
        _start_serve, "--kubernetes", "--kubeconfig", str(cfg), "--listen", "127.0.0.1:0",
        "--access-log", "off", "--no-auth-secrets", *extra)
    try:
        served = await _first_table_status(ports["http"])
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
        backend.close()
        await backend.wait_closed()
    assert "Traceback" not in err, err
    res = ingresslib.parse_manifests("\n---\n".join(json.dumps(o) for o in objects))
    doc = ingresslib.explain(res, "http://a.test/", no_auth_secrets=True, **options)
    assert (doc["status"], served) == ((200, 200) if extra else (503, 503))
    if not extra:
        assert "proxy-ssl-secret shop/backend: no such Secret" in doc["reason"]


def test_explain_no_auth_secrets_https_url_stands_for_the_tls_listener(ca: trustme.CA) -> None:
    # An https:// URL is serve's HTTPS listener (``--tls-listen``): its TLS watch reads the
    # kubernetes.io/tls Secret (the tls-listen case above); an http:// URL alone reads none,
    # the --default-ssl-certificate one included (serve watches it with --tls-listen only).
    import ingresslib

    default = _secret("default", "Opaque", {"tls.crt": b"c", "tls.key": b"k"}, ns=NS)
    objects = [*_objects(8443), _backend_secret(ca), default]
    res = ingresslib.parse_manifests("\n---\n".join(json.dumps(o) for o in objects))
    from ingresslib._explain_api import _tls_secrets_only

    assert ingresslib.explain(res, "https://a.test/", no_auth_secrets=True)["status"] == 200
    assert ingresslib.explain(res, "http://a.test/", no_auth_secrets=True,
                              tls_listen="127.0.0.1:8443")["status"] == 200
    assert _tls_secrets_only(res, f"{NS}/default", https=False).secrets == ()
    assert [s.metadata.name for s in _tls_secrets_only(res, f"{NS}/default", https=True)
            .secrets] == ["backend", "default"]


# -- the watcher: two watches of named Secrets -------------------------------------------------


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Any]:
    from _fake_kube_s14 import FakeKubeS14
    from test_kube import running_harness

    async with running_harness(FakeKubeS14()) as harness:
        yield harness


def _gets(h: Any, name: str) -> int:
    """How many times the Secret ``name`` was read by name."""
    return sum(1 for plural, _, got in h.kube.gets if plural == "secrets" and got == name)


def _only_watch(kube: Any, type_: str) -> Any:
    """The open watch of Secrets of ``type_`` (the fake's selector tells them apart)."""
    probe = {"metadata": {"name": "x", "namespace": NS}, "type": type_}
    (watch,) = [w for w in kube.watches if w.plural == "secrets" and w.accept(probe)]
    return watch


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_role_without_secrets_does_not_hold_back_the_first_table(h: Any) -> None:
    # Both lists of named Secrets refused (RBAC cannot grant one type and not the other): the
    # first table waits for both attempts only, then comes without the Secrets.
    h.kube.rbac = lambda verb, plural, ns: plural != "secrets"
    h.kube.put(_secret("ca", TLS, {"ca.crt": b"a", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_ingress("mtls", "ca"))
    h.start(kinds=_http_only_kinds())
    await h.synced()
    assert _stored(h) == {}
    assert {r.query.get("fieldSelector") for r in h.kube.requests
            if r.plural == "secrets"} == {"type=Opaque", f"type={TLS}"}
    # The Role fixed: the watch of its type brings it, without a restart.
    h.kube.rbac = None
    from test_kube import eventually

    await eventually(lambda: _stored(h) == {"ca": TLS})


@pytest.mark.network
@pytest.mark.asyncio
async def test_one_watch_relisting_leaves_the_others_secret(h: Any) -> None:
    from _fake_kube import _event, _status
    from test_kube import eventually

    h.kube.put(_secret("ca", TLS, {"ca.crt": b"a", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_secret("users", "Opaque", {"auth": b"u:p"}, ns=NS))
    h.kube.put(_ingress("mtls", "ca"))
    h.kube.put(dict(_ingress("basic", "ca"), metadata={
        "name": "basic", "namespace": NS, "annotations": {
            "nginx.ingress.kubernetes.io/auth-type": "basic",
            "nginx.ingress.kubernetes.io/auth-secret": "users"}}))
    h.start(kinds=_http_only_kinds())
    await h.synced()
    await h.watching("secrets", 2)
    assert _stored(h) == {"ca": TLS, "users": "Opaque"}
    for type_, other in (("Opaque", "ca"), (TLS, "users")):
        lists = len(h.kube.list_requests("secrets"))
        h.kube.compact()
        gone = _event("ERROR", _status(410, "Expired", "too old resource version"))
        watch = _only_watch(h.kube, type_)
        watch.queue.put_nowait(("line", gone))
        watch.queue.put_nowait(("end", b""))
        await eventually(lambda: len(h.kube.list_requests("secrets")) == lists + 1)
        await h.watching("secrets", 2)
        assert h.kube.list_requests("secrets")[-1].query["fieldSelector"] == f"type={type_}"
        assert other in _stored(h)
    assert _stored(h) == {"ca": TLS, "users": "Opaque"}
    assert h.kube.get_count("secrets") == 0


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_secret_unnamed_then_named_again_with_the_other_type(h: Any) -> None:
    from test_kube import eventually

    h.kube.put(_secret("ca", TLS, {"ca.crt": b"a", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_secret("keep", "Opaque", {"ca.crt": b"k"}, ns=NS))
    h.kube.put(_ingress("keeper", "keep"))   # one Secret stays named: the watches go on
    h.kube.put(_ingress("mtls", "ca"))
    h.start(kinds=_http_only_kinds())
    await h.synced()
    await h.watching("secrets", 2)
    assert _stored(h) == {"ca": TLS, "keep": "Opaque"}
    h.kube.put(_ingress("mtls", "nothing"))
    await eventually(lambda: _stored(h) == {"keep": "Opaque"})
    # Re-created with the other type while not named: no watch keeps it.
    h.kube.delete("Secret", NS, "ca")
    h.kube.put(_secret("ca", "Opaque", {"ca.crt": b"o"}, ns=NS))
    await asyncio.sleep(0.2)
    assert _stored(h) == {"keep": "Opaque"}
    # Named again: read once by name, kept by the Opaque watch, followed by it.
    h.kube.put(_ingress("mtls", "ca"))
    await eventually(lambda: _stored(h) == {"ca": "Opaque", "keep": "Opaque"})
    assert _gets(h, "ca") == 1
    h.kube.put(_secret("ca", "Opaque", {"ca.crt": b"o2"}, ns=NS))
    await eventually(lambda: h.watcher.store.snapshot().secrets[0].get_bytes("ca.crt")
                     == b"o2")
    # Deleted and re-created as kubernetes.io/tls while named: the TLS watch's now.
    h.kube.delete("Secret", NS, "ca")
    h.kube.put(_secret("ca", TLS, {"ca.crt": b"t", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    await eventually(lambda: _stored(h) == {"ca": TLS, "keep": "Opaque"})
    assert _gets(h, "ca") == 1


@pytest.mark.network
@pytest.mark.asyncio
async def test_with_a_tls_watch_the_secret_requests_are_those_of_before(h: Any) -> None:
    # --tls-listen: the TLS watch and the Opaque watch of named Secrets, nothing more; a
    # kubernetes.io/tls Secret named later is the TLS watch's (no get).
    from ingresslib._kube import AUTH_SECRETS, WATCHED_KINDS, with_auth_secrets
    from test_kube import eventually

    kinds = with_auth_secrets(WATCHED_KINDS)
    assert kinds == (*WATCHED_KINDS, AUTH_SECRETS)
    h.kube.put(_secret("ca", TLS, {"ca.crt": b"a", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_secret("later", TLS, {"ca.crt": b"b", "tls.crt": b"c", "tls.key": b"k"}, ns=NS))
    h.kube.put(_ingress("mtls", "ca"))
    h.start(kinds=kinds)
    await h.synced()
    await h.watching("secrets", 2)
    h.kube.put(_ingress("other", "later"))
    await eventually(lambda: len(h.watcher.store.snapshot().ingresses) == 2)
    await asyncio.sleep(0.2)
    selectors = sorted(r.query.get("fieldSelector", "") for r in h.kube.requests
                       if r.plural == "secrets" and "name" not in r.query)
    assert selectors == ["type=Opaque", "type=Opaque", f"type={TLS}", f"type={TLS}"]
    assert h.kube.get_count("secrets") == 1  # the Opaque watch's get: not its type, not kept
    assert _stored(h) == {"ca": TLS, "later": TLS}


def test_every_secret_has_one_owner_with_the_default_secret_and_no_tls_watch() -> None:
    # A program's kinds without the TLS watch, the named Secrets of both types and the
    # --default-ssl-certificate one by name (x52): each Secret is one watch's, whatever its
    # type, the default one too (no ``leaves`` needed on the kubernetes.io/tls watch: the
    # default one's watch selects another type).
    from ingresslib._kube import (AUTH_TLS_SECRETS, WATCHED_KINDS, _model_test,
                                  with_auth_secrets, with_default_secret)

    bare = tuple(k for k in WATCHED_KINDS if k.kind != "Secret")
    kinds = with_default_secret(with_auth_secrets(bare), NS, "default")
    secrets = [k for k in kinds if k.kind == "Secret"]
    assert AUTH_TLS_SECRETS in secrets and len(secrets) == 3
    for name in ("default", "other"):
        for type_ in ("Opaque", TLS):
            obj = _secret(name, type_, {}, ns=NS)
            owners = [k.name for k in secrets if (_model_test(k) or (lambda o: True))(obj)]
            want = {("default", "Opaque"): ["default Secret"],
                    ("other", "Opaque"): ["auth Secret"]}.get((name, type_),
                                                               ["auth TLS Secret"])
            assert owners == want, (name, type_)
