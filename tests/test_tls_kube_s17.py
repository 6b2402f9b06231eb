"""Session 17 review of TLS certificates and the cluster watch (K17).

1. The watch converges to the cluster's state (a seeded random walk against the fake API server
   on 127.0.0.1, ``tests/_fake_kube.py``): TLS Secrets created, updated, deleted, deleted and
   re-created with the same name or as another type (a Secret's type is immutable, so that is a
   delete and a create), in bursts, across watch streams cut mid-line, connections dropped, and
   ``410 Gone`` (history compacted) in the middle of a burst. After the last step the store's
   TLS Secrets are the cluster's, by name, content and resourceVersion.
2. A Secret whose update is valid PEM but unusable (chain in the wrong order, an encrypted key, a
   key of another certificate) is reported with the cause named and keeps its last good
   certificate; an EC key loads.

3. The certificate-expiry metric without a TLS listener (``served_certificates``) keeps no
   SSLContext in its cache (it kept one per certificate, ~20 KB each).
4. ``ingresslib check`` says that cert-manager creates a missing Secret when the Ingress asks it
   to (it said "not found" alone).

1 and 2 are guards (right before session 17; the walks fail when a re-list stops dropping
missing keys or drops the other Secret watch's objects); 3 and 4 failed before their change.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import trustme
from cryptography.hazmat.primitives import serialization

from ingresslib import Resources
from ingresslib._tls import CertificateStore

from _fake_kube import FakeKube, _event
from test_kube import Harness, eventually, running_harness

pytestmark = [pytest.mark.network]

NAMES = ("a", "b", "c")


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Harness]:
    async with running_harness(FakeKube()) as harness:
        yield harness


def secret(name: str, type_: str, version: int) -> dict[str, Any]:
    """A Secret whose content says its version (the store does not read the PEM)."""
    if type_ == "kubernetes.io/tls":
        data = {"tls.crt": base64.b64encode(b"crt%d" % version).decode(),
                "tls.key": base64.b64encode(b"key%d" % version).decode()}
    else:
        data = {"auth": base64.b64encode(b"u:%d" % version).decode()}
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": "default"}, "data": data}


def cluster_tls(kube: FakeKube) -> dict[str, tuple[str, str]]:
    """The cluster's TLS Secrets: name -> (resourceVersion, tls.crt)."""
    return {name: (o["metadata"]["resourceVersion"], o["data"]["tls.crt"])
            for (_ns, name), o in kube.objects["secrets"].items()
            if o["type"] == "kubernetes.io/tls"}


def stored_tls(h: Harness) -> dict[str, tuple[str, str]]:
    assert h.watcher is not None
    return {s.metadata.name: (s.metadata.resource_version or "",
                              base64.b64encode(s.get_bytes("tls.crt") or b"").decode())
            for s in h.watcher.store.snapshot().secrets}


def step(kube: FakeKube, rng: random.Random, version: int) -> None:
    """One change of the cluster, or one fault of the watch stream."""
    name = rng.choice(NAMES)
    held = kube.objects["secrets"].get(("default", name))
    op = rng.randrange(9)
    if op <= 2:
        if held is not None and held["type"] != "kubernetes.io/tls":
            kube.delete("Secret", "default", name)   # the type is immutable: re-created
        kube.put(secret(name, "kubernetes.io/tls", version))
    elif op == 3 and held is not None:
        kube.delete("Secret", "default", name)
    elif op == 4:
        # Replaced by a Secret of another type, or the reverse (kubectl replace --force).
        if held is not None:
            kube.delete("Secret", "default", name)
        kube.put(secret(name, "Opaque" if held is None or held["type"] == "kubernetes.io/tls"
                        else "kubernetes.io/tls", version))
    elif op == 5 and held is not None:
        # Deleted and re-created with the same name (a new object, same key).
        kube.delete("Secret", "default", name)
        kube.put(secret(name, held["type"], version))
    elif op == 6:
        # A stream cut in the middle of a JSON line (an event that was never complete).
        line = _event("MODIFIED", secret(name, "kubernetes.io/tls", 10_000 + version))
        kube.truncate("secrets", line[:rng.randrange(1, len(line) - 1)])
    elif op == 7:
        kube.gone("secrets")          # 410 Gone: history compacted, a re-list follows
    else:
        kube.drop("secrets")          # connection aborted between two lines


_State = Callable[[Any], dict[str, tuple[str, str]]]


async def walk(h: Harness, rng: random.Random, stored: _State, cluster: _State,
               seed: int) -> dict[str, tuple[str, str]]:
    """Twelve bursts of ``step``; returns the cluster's state at the end, once the store
    (``stored``) holds it too (``cluster``)."""
    version = 1
    for _burst in range(12):
        # A burst: several steps with no pause between them (what the watch sees as one run of
        # lines, faults included), then a pause of random length (sometimes none).
        for _ in range(rng.randrange(1, 6)):
            step(h.kube, rng, version)
            version += 1
        await asyncio.sleep(rng.choice((0, 0, 0.005, 0.03)))
        if rng.random() < 0.5:
            # Settled now and then, not after every burst: faults also land on a watch that
            # is still reconnecting or re-listing.
            await eventually(lambda: stored(h) == cluster(h.kube), timeout=10)
    want = cluster(h.kube)
    try:
        await eventually(lambda: stored(h) == want, timeout=10)
    except AssertionError:
        raise AssertionError(f"seed {seed}: store {stored(h)} != cluster {want}") from None
    return want


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(6))
async def test_the_tls_secret_store_converges_to_the_cluster(h: Harness, seed: int) -> None:
    rng = random.Random(seed)
    for name in NAMES[:2]:
        h.kube.put(secret(name, "kubernetes.io/tls", 0))
    await h.start_watching("secrets")
    want = await walk(h, rng, stored_tls, cluster_tls, seed)
    # Every change in the cluster reached the callback too (the last snapshot is the store's).
    await eventually(lambda: bool(h.snapshots) and {s.metadata.name for s in h.last.secrets}
                     == set(want))



def cluster_all(kube: FakeKube) -> dict[str, tuple[str, str]]:
    """Every Secret of the cluster: name -> (type, resourceVersion)."""
    return {name: (o["type"], o["metadata"]["resourceVersion"])
            for (_ns, name), o in kube.objects["secrets"].items()}


def stored_all(h: Harness) -> dict[str, tuple[str, str]]:
    assert h.watcher is not None
    return {s.metadata.name: (s.type, s.metadata.resource_version or "")
            for s in h.watcher.store.snapshot().secrets}


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(6))
async def test_both_secret_watches_converge_to_the_cluster(h: Harness, seed: int) -> None:
    # The same walk with the basic-auth Secret watch too (``type: Opaque``), every name being
    # an auth-secret of some Ingress: a name that changes type moves between the two watches,
    # which see its delete and its create in either order, through the same faults.
    from test_kube_s14 import KINDS_WITH_AUTH, basic_ingress

    rng = random.Random(seed)
    for i, name in enumerate(NAMES):
        h.kube.put(basic_ingress(f"i{name}", name, host=f"{name}.example"))
        h.kube.put(secret(name, "kubernetes.io/tls" if i % 2 else "Opaque", 0))
    h.start(kinds=KINDS_WITH_AUTH)
    await h.synced()
    await h.watching("secrets", 2)
    await walk(h, rng, stored_all, cluster_all, seed)


@pytest.mark.asyncio
async def test_deleted_and_recreated_between_two_lists_is_the_new_object(h: Harness) -> None:
    # While the watch is down and history is compacted (410 on resume, then a re-list), the
    # Secret is deleted and re-created with the same name and new content: the re-list must
    # replace the old object, and a TLS Secret replaced by an Opaque one must leave.
    h.kube.put(secret("a", "kubernetes.io/tls", 1))
    h.kube.put(secret("b", "kubernetes.io/tls", 1))
    await h.start_watching("secrets")
    assert set(stored_tls(h)) == {"a", "b"}
    relists = h.watcher.stats.relists if h.watcher else 0
    h.kube.delete("Secret", "default", "a")
    h.kube.put(secret("a", "kubernetes.io/tls", 2))
    h.kube.delete("Secret", "default", "b")
    h.kube.put(secret("b", "Opaque", 2))
    h.kube.gone("secrets")
    await eventually(lambda: stored_tls(h) == cluster_tls(h.kube))
    assert set(stored_tls(h)) == {"a"}
    assert stored_tls(h)["a"][1] == base64.b64encode(b"crt2").decode()
    assert h.watcher is not None and h.watcher.stats.relists > relists


# -- 2. unusable PEM updates: named, and the last good certificate kept ---------------------------


def tls_res(crt: bytes, key: bytes) -> Resources:
    return Resources.from_dicts([
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web", "namespace": "default"},
         "spec": {"tls": [{"hosts": ["a.test"], "secretName": "s"}],
                  "rules": [{"host": "a.test", "http": {"paths": [{
                      "path": "/", "pathType": "Prefix",
                      "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "s", "namespace": "default"},
         "stringData": {"tls.crt": crt.decode(), "tls.key": key.decode()}},
    ])


def _encrypted(key_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b"secret"))


def _bad_updates() -> dict[str, tuple[bytes, bytes, str]]:
    root = trustme.CA()
    inter = root.create_child_ca()
    leaf = inter.issue_cert("a.test")
    chain = [b.bytes() for b in leaf.cert_chain_pems]      # leaf, intermediate
    key = leaf.private_key_pem.bytes()
    other = root.issue_cert("a.test").private_key_pem.bytes()
    return {
        "chain in the wrong order": (b"".join(reversed(chain)), key,
                                     "the chain must start with the leaf"),
        "encrypted key": (b"".join(chain), _encrypted(key), "tls.key is encrypted"),
        "key of another certificate": (b"".join(chain), other,
                                       "tls.key does not match the certificate"),
    }


BAD = _bad_updates()


@pytest.mark.parametrize("case", sorted(BAD))
def test_an_unusable_update_is_named_and_keeps_the_last_good_certificate(case: str) -> None:
    good = trustme.CA().issue_cert("a.test", key_type=trustme.KeyType.ECDSA)
    store = CertificateStore()
    assert store.update(tls_res(b"".join(b.bytes() for b in good.cert_chain_pems),
                                good.private_key_pem.bytes())) == []   # an EC key loads
    served = store.context_for("a.test")
    assert served is not store.default_context
    crt, key, why = BAD[case]
    problems = store.update(tls_res(crt, key))
    assert len(problems) == 1, problems
    assert why in problems[0].message and "last good certificate" in problems[0].message
    assert problems[0].warning
    assert store.context_for("a.test") is served
    # A fresh store (what `ingresslib check` sees) reports it as an error.
    fresh = CertificateStore().update(tls_res(crt, key))
    assert len(fresh) == 1 and why in fresh[0].message and not fresh[0].warning


# -- 3. the certificate-expiry metric without a TLS listener keeps no context ----------------------


def test_the_expiry_metric_keeps_no_ssl_context_and_loads_each_certificate_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # ``serve`` with metrics and no --tls-listen refreshes the expiry gauge from
    # ``served_certificates`` on every reload. Before: its cache kept every certificate's
    # SSLContext (~20 KB of OpenSSL state each: 20 MB for 1,000 Secrets) for the life of the
    # process, though the metric reads only names and dates.
    import gc
    import weakref

    from ingresslib import _tls

    made: list[weakref.ref[Any]] = []
    real = _tls._new_context

    def counting(crt: bytes, key: bytes) -> Any:
        ctx = real(crt, key)
        made.append(weakref.ref(ctx))
        return ctx

    monkeypatch.setattr(_tls, "_new_context", counting)
    monkeypatch.setattr(_tls, "_served_loaded", [_tls._Loaded({}, {})])
    objs: list[dict[str, Any]] = []
    for i in range(3):
        crt, key = _tls.generate_certificate([f"h{i}.test"])
        objs += [
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
             "metadata": {"name": f"i{i}", "namespace": "default"},
             "spec": {"tls": [{"hosts": [f"h{i}.test"], "secretName": f"s{i}"}],
                      "rules": [{"host": f"h{i}.test", "http": {"paths": [{
                          "path": "/", "pathType": "Prefix",
                          "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
            {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
             "metadata": {"name": f"s{i}", "namespace": "default"},
             "stringData": {"tls.crt": crt.decode(), "tls.key": key.decode()}}]
    res = Resources.from_dicts(objs)
    first = _tls.served_certificates(res)
    assert [(h, s) for h, s, _ in first] == [(f"h{i}.test", f"default/s{i}") for i in range(3)]
    assert len(made) == 3
    gc.collect()
    assert [r for r in made if r() is not None] == []     # none kept alive
    # The cache still spares the next refresh every load, and lists the same.
    assert _tls.served_certificates(res) == first
    assert len(made) == 3


# -- 4. check: a Secret cert-manager is asked to create ---------------------------------------------


CM_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {%s}
spec:
  tls: [{hosts: [shop.example.com], secretName: shop-tls}]
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{port: 80}]
"""


@pytest.mark.parametrize(("annotations", "asks"), [
    ('cert-manager.io/cluster-issuer: letsencrypt', "cert-manager.io/cluster-issuer: letsencrypt"),
    ('cert-manager.io/issuer: ca', "cert-manager.io/issuer: ca"),
    ('kubernetes.io/tls-acme: "true"', "kubernetes.io/tls-acme: true"),
    ('kubernetes.io/tls-acme: "false"', None),
    ('', None),
])
def test_check_says_cert_manager_creates_the_missing_secret(
        tmp_path: Any, capsys: pytest.CaptureFixture[str], annotations: str,
        asks: str | None) -> None:
    # Before: "Secret shop/shop-tls not found" alone, for manifests that are right as they are
    # (cert-manager creates the Secret once they are applied): it read as a Secret to add.
    from ingresslib._cli import main

    path = tmp_path / "cm.yaml"
    path.write_text(CM_INGRESS % annotations)
    code = main(["check", "-f", str(path)])
    _out, err = capsys.readouterr()
    assert code == 0
    line = "warning: Ingress shop/web: spec.tls[0].secretName: Secret shop/shop-tls not found"
    if asks is None:
        assert line in err.splitlines()
    else:
        assert (f"{line}: cert-manager creates it once it has issued the certificate this "
                f"Ingress asks for ({asks}); until then its hosts get the default certificate"
                in err.splitlines())
