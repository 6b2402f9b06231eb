"""Session 13 review of the cluster watch against client-go's reflector (tests/_fake_kube_s13.py
on 127.0.0.1): a resourceVersion the server has not reached (etcd restored from a backup),
what a denied list or watch says, and the namespace-scoped RBAC that docs/cluster.md offers.

Every test here failed on the code before its fix; each says what it guards.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from _fake_kube import KINDS
from _fake_kube_s13 import FakeKubeS13
from test_kube import (Harness, eventually, names, record_backoff_sleeps, running_harness,
                       svc)

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parent.parent


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Harness]:
    async with running_harness(FakeKubeS13()) as harness:
        yield harness


# -- a resourceVersion the server has not reached -------------------------------------------------


@pytest.mark.asyncio
async def test_etcd_restored_from_a_backup_relists_instead_of_waiting_forever(h: Harness) -> None:
    # Regression: after etcd was restored from a backup, resourceVersions went back in time, and
    # the watch's version was one the API server had not reached: kube-apiserver answers such a
    # watch "504 Timeout: Too large resource version" (cause ResourceVersionTooLarge). The
    # watcher retried the watch from that same version forever, so the objects the restore
    # removed were served until a restart and no change was seen. client-go's reflector
    # (isTooLargeResourceVersionError) re-lists with resourceVersion="" instead.
    kube = h.kube
    assert isinstance(kube, FakeKubeS13)
    kube.put(svc("kept"))
    backup = kube.backup()
    kube.put(svc("lost"))  # created after the backup: gone once it is restored
    w = await h.start_watching("services")
    assert names(h.last.services) == ["kept", "lost"]
    kube.restore(backup)
    await eventually(lambda: names(h.last.services) == ["kept"], timeout=8)
    await h.watching("services")
    kube.put(svc("new"))
    await eventually(lambda: names(h.last.services) == ["kept", "new"])
    assert w.stats.relists >= 1 and "Too large resource version" in w.stats.last_error


def test_too_large_is_recognised_as_client_go_does() -> None:
    # client-go (tools/cache/reflector.go, isTooLargeResourceVersionError): the cause
    # ResourceVersionTooLarge, or, from 1.17.0-1.18.5 servers, a Timeout whose cause message or
    # whose message says "Too large resource version". A plain timeout is not one.
    from lightkube.core.exceptions import ApiError

    from ingresslib._kube import _is_too_large
    from lightkube.models.meta_v1 import Status

    def err(body: dict[str, object]) -> ApiError:
        return ApiError(status=Status.from_dict(body))

    assert _is_too_large(err({"code": 504, "reason": "Timeout", "details": {
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "x"}]}}))
    assert _is_too_large(err({"code": 504, "reason": "Timeout", "details": {
        "causes": [{"message": "Too large resource version"}]}}))
    assert _is_too_large(err({"code": 504, "reason": "Timeout",
                              "message": "Too large resource version: 9, current: 3"}))
    assert not _is_too_large(err({"code": 504, "reason": "Timeout", "message": "timed out"}))
    assert not _is_too_large(err({"code": 500, "reason": "InternalError",
                                  "message": "Too large resource version"}))


# -- namespace-scoped RBAC ------------------------------------------------------------------------


def _doc_rbac() -> list[dict[str, object]]:
    """The Role/ClusterRole example of docs/cluster.md ("--namespace NS with a Role in NS")."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from test_docs import blocks

    found = [b for b in blocks(ROOT / "docs" / "cluster.md")
             if b.lang == "yaml" and "kind: Role\n" in b.code]
    assert len(found) == 1, "docs/cluster.md has no namespace-scoped RBAC example"
    return [d for d in yaml.safe_load_all(found[0].code) if d]


def _authorizer(docs: list[dict[str, object]], *, cluster_binding: bool = True):  # type: ignore[no-untyped-def]
    """RBAC as kube-apiserver evaluates it, for list and watch: a bound ClusterRole grants in
    every namespace and at the cluster scope, a Role bound in its namespace only there."""
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs  # type: ignore[index]
             if d["kind"] in ("Role", "ClusterRole")}
    grants: list[tuple[str | None, dict[str, object]]] = []
    for d in docs:
        if d["kind"] == "RoleBinding" or (d["kind"] == "ClusterRoleBinding" and cluster_binding):
            ref = d["roleRef"]  # type: ignore[index]
            role = roles[(ref["kind"], ref["name"])]  # type: ignore[index]
            ns = d["metadata"]["namespace"] if d["kind"] == "RoleBinding" else None  # type: ignore[index]
            grants.extend((ns, rule) for rule in role["rules"])  # type: ignore[index, attr-defined]

    def allowed(verb: str, plural: str, namespace: str | None) -> bool:
        group = KINDS[plural][0].rpartition("/")[0]
        return any((ns is None or ns == namespace) and group in rule["apiGroups"]  # type: ignore[operator]
                   and plural in rule["resources"] and verb in rule["verbs"]  # type: ignore[operator]
                   for ns, rule in grants)

    return allowed


@pytest.mark.asyncio
async def test_documented_namespace_rbac_lets_the_watcher_sync(h: Harness) -> None:
    # Regression (docs): docs/cluster.md offered "--namespace NS with a Role in NS instead of the
    # ClusterRole". A Role cannot grant the cluster-scoped IngressClasses, so their list got
    # 403 forever and the first table (which waits for every kind) never came. The documented
    # RBAC now keeps a ClusterRole for ingressclasses alone; run the watcher under exactly it.
    kube = h.kube
    assert isinstance(kube, FakeKubeS13)
    docs = _doc_rbac()
    kube.rbac = _authorizer(docs)
    kube.put(svc("web", ns="shop"))
    h.start(namespace="shop")
    await h.synced()
    assert names(h.last.services) == ["web"]
    assert {r.plural for r in kube.requests if not r.watch} == set(KINDS)
    # Least privilege: nothing outside "shop" except the IngressClasses is granted.
    allowed = _authorizer(docs)
    assert not any(allowed(v, p, ns) for v in ("list", "watch") for p in KINDS
                   if p != "ingressclasses" for ns in (None, "other"))


@pytest.mark.asyncio
async def test_namespace_rbac_without_the_cluster_grant_never_syncs(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    # Why the ClusterRole is there: the Role alone leaves IngressClass forbidden, the first
    # table never comes, and the log says which resource and verb was refused.
    kube = h.kube
    assert isinstance(kube, FakeKubeS13)
    kube.rbac = _authorizer(_doc_rbac(), cluster_binding=False)
    with caplog.at_level(logging.ERROR, logger="ingresslib.kube"):
        w = h.start(namespace="shop")
        await eventually(lambda: w.stats.stream_errors >= 2)
    assert not w.synced.is_set()
    assert "ingressclasses" in caplog.text


# -- what a denied list or watch says -------------------------------------------------------------


@pytest.mark.asyncio
async def test_denied_watch_names_the_rbac_resource_verb_and_scope(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    # Regression: a 403 was logged as "check ... that the ServiceAccount may get, list and watch
    # Ingress" whatever was refused: the kind, not the resource RBAC rules name (ingresses, in
    # API group networking.k8s.io), and neither the verb nor the scope. When the 403 comes from
    # a proxy in front of the API server (an HTML body), nothing else says it either.
    kube = h.kube
    kube.put(svc("web", ns="shop"))
    await h.start_watching("ingresses", namespace="shop")
    with caplog.at_level(logging.ERROR, logger="ingresslib.kube"):
        kube.fail_next("ingresses", 403, body=b"<html>403 Forbidden</html>",
                       content_type="text/html")
        kube.drop("ingresses")
        await eventually(lambda: "denied" in caplog.text)
        kube.fail_next("ingressclasses", 401, body=b"Unauthorized", content_type="text/plain")
        kube.drop("ingressclasses")
        await eventually(lambda: "HTTP 401" in caplog.text)
    assert ('watch of ingresses (API group "networking.k8s.io") in namespace shop was refused'
            in caplog.text)
    assert "did not accept the credentials for the watch of ingressclasses" in caplog.text
    await h.watching("ingresses")  # and it goes on once allowed


@pytest.mark.asyncio
async def test_a_lagging_api_server_is_relisted_with_growing_backoff(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same answer from an API server whose cache stopped following etcd: each watch from
    # the list's version is "too large". The watcher re-lists, and the successful lists do not
    # reset the backoff (that would re-list from etcd every second or so, per kind and replica,
    # for as long as the server lags); it grows as client-go's backoff manager does.
    from ingresslib._kube import Backoff

    kube = h.kube
    assert isinstance(kube, FakeKubeS13)
    kube.too_large_retry_after = None
    kube.put(svc("web"))
    w = await h.start_watching(
        "services", backoff=Backoff(initial=0.01, maximum=0.08, factor=2, jitter=0))
    delays = record_backoff_sleeps(monkeypatch)
    kube.cache_lag["services"] = 1
    kube.drop("services")
    # A re-list is counted after its backoff sleep: wait for the count, not only the sleeps
    # (the fifth sleep can still be running when it is recorded).
    await eventually(lambda: len(delays) >= 5 and w.stats.relists >= 4)
    assert delays[:5] == [0.01, 0.02, 0.04, 0.08, 0.08]
    kube.cache_lag.clear()  # caught up: the watch holds, and changes come again
    kube.put(svc("more"))
    await eventually(lambda: names(h.last.services) == ["more", "web"])
