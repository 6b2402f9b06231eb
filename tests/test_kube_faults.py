"""The cluster watch against a faulty or hostile API server (tests/_fake_kube.py on 127.0.0.1):
error bodies that are not JSON, ``Expired``/``Gone`` by reason, unknown event types, paginated
lists (consistent pages, expired continue tokens), RBAC denial or a missing kind for one kind,
backoff bounds and reset, and deletes missed while disconnected.

Every regression test here says what it guards; the helpers are test_kube's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

import ingresslib._kube
from ingresslib._kube import Backoff

from _fake_kube import Request
from test_kube import (Harness, _watches, eventually, h, names,  # noqa: F401 - h: the fixture
                       record_backoff_sleeps, svc)

pytestmark = pytest.mark.network


# -- error responses whose body is not a Status ---------------------------------------------------


@pytest.mark.asyncio
async def test_non_json_429_body_keeps_the_status_and_retry_after(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: a proxy in front of the API server answers 429 with an HTML page labelled
    # application/json. lightkube's ApiError cannot decode it and raises a JSONDecodeError
    # instead, which dropped the HTTP status and the Retry-After: the watcher came back after
    # its own (short) backoff and logged no status.
    delays = record_backoff_sleeps(monkeypatch)
    w = await h.start_watching("services", backoff=Backoff(initial=0.001, maximum=0.001, jitter=0))
    h.kube.fail_next("services", 429, headers={"Retry-After": "2"},
                     body=b"<html><body>Too many requests</body></html>")
    h.kube.drop("services")
    await eventually(lambda: len(delays) == 2)
    await h.watching("services")
    assert delays == [0.001, 2.0]
    assert "HTTP 429" in w.stats.last_error
    assert w.stats.stream_errors == 2 and w.stats.garbage == 0


@pytest.mark.asyncio
async def test_non_json_410_body_relists(h: Harness) -> None:
    # Regression: the same undecodable body on a 410 hid the 410, so the watcher retried the
    # expired resourceVersion forever instead of re-listing.
    h.kube.put(svc("keep"))
    h.kube.put(svc("lost"))
    w = await h.start_watching("services")
    h.kube.objects["services"].pop(("default", "lost"))  # deleted where no watch sees it
    h.kube.fail_next("services", 410, times=1000, body=b"gone, and not JSON")
    h.kube.drop("services")
    await eventually(lambda: w.stats.relists >= 1)
    h.kube.clear_failures()
    await eventually(lambda: names(h.last.services) == ["keep"])


@pytest.mark.asyncio
@pytest.mark.parametrize("reason", ["Expired", "Gone"])
async def test_error_event_expired_by_reason_relists(h: Harness, reason: str) -> None:
    # client-go's reflector.go: isExpiredError(err) = apierrors.IsResourceExpired(err) ||
    # apierrors.IsGone(err) -- it decides by the Status *reason* (API servers up to 1.17 sent
    # "Gone", later ones "Expired"). An ERROR event saying so must re-list even when its code
    # is not 410.
    w = await h.start_watching("services")
    h.kube.raw_event("services", "ERROR", {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version: 5 (100)", "reason": reason})
    await eventually(lambda: w.stats.relists == 1)
    await eventually(lambda: h.kube.count("services", watch=False) == 2)
    assert w.stats.stream_errors == 0


@pytest.mark.asyncio
async def test_error_event_500_reconnects_from_the_same_version(h: Harness) -> None:
    h.kube.put(svc("web"))
    w = await h.start_watching("services")
    rv = w.stats.resource_versions["Service"]
    h.kube.raw_event("services", "ERROR", {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "etcd is sad", "reason": "InternalError", "code": 500})
    await eventually(lambda: len(_watches(h.kube, "services")) == 2)
    assert _watches(h.kube, "services")[-1].query["resourceVersion"] == rv
    assert h.kube.count("services", watch=False) == 1 and w.stats.relists == 0
    assert "HTTP 500" in w.stats.last_error
    assert names(h.last.services) == ["web"]


@pytest.mark.asyncio
async def test_unknown_event_type_is_counted_and_skipped(h: Harness) -> None:
    w = await h.start_watching("services")
    h.kube.raw_event("services", "RENAMED", dict(svc("odd"), metadata={
        "name": "odd", "namespace": "default", "resourceVersion": "500"}))
    h.kube.put(svc("after"))
    await eventually(lambda: names(h.last.services) == ["after"])
    assert w.stats.garbage == 1 and "RENAMED" in w.stats.last_error
    assert len(_watches(h.kube, "services")) == 1  # the stream itself was fine: no reconnect


# -- paginated lists ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_paginated_list_is_complete_and_changes_between_pages_come_once(
        h: Harness) -> None:
    for i in range(20):
        h.kube.put(svc(f"s{i:02}"))
    pages = 0

    def between_pages(req: Request) -> None:
        nonlocal pages
        if req.plural == "services" and not req.watch:
            pages += 1
            if pages == 2:
                # While the client pages through, s00 is deleted and s20 created: the list
                # (a snapshot at its first page's version) shows neither change; the watch from
                # the list's version delivers both, once.
                h.kube.delete("Service", "default", "s00")
                h.kube.put(svc("s20"))

    h.kube.on_request = between_pages
    w = h.start(list_chunk_size=7)
    await h.synced()
    lists = [r for r in h.kube.requests if r.plural == "services" and not r.watch]
    assert len(lists) == 3 and all(r.query.get("limit") == "7" for r in lists)
    assert "continue" not in lists[0].query and lists[1].query.get("continue")
    assert _watches(h.kube, "services")[0].query["resourceVersion"] == "120"
    await eventually(lambda: names(h.last.services) == [f"s{i:02}" for i in range(1, 21)])
    assert w.stats.events == 2 and w.stats.relists == 0


@pytest.mark.asyncio
async def test_large_list_in_default_pages(h: Harness) -> None:
    for i in range(1234):
        h.kube.put(svc(f"s{i:04}"))
    h.kube.max_page = 500  # a server-side cap as well: pages never exceed it
    w = h.start()
    await h.synced()
    lists = [r for r in h.kube.requests if r.plural == "services" and not r.watch]
    assert [r.query.get("limit") for r in lists] == ["500"] * 3
    assert len(h.last.services) == 1234 and w.stats.lists == 5


@pytest.mark.asyncio
async def test_expired_continue_token_relists_from_the_start(h: Harness) -> None:
    for i in range(10):
        h.kube.put(svc(f"s{i}"))
    pages = 0

    def expire(req: Request) -> None:
        nonlocal pages
        if req.plural == "services" and not req.watch:
            pages += 1
            if pages == 2:
                h.kube.expire_continues()
                h.kube.delete("Service", "default", "s9")

    h.kube.on_request = expire
    w = h.start(list_chunk_size=4)
    await h.synced()
    assert w.stats.relists == 1
    lists = [r for r in h.kube.requests if r.plural == "services" and not r.watch]
    # page 1, page 2 (410), then one unpaged list (client-go's pager: "fall back to a full
    # list"; session 24)
    assert len(lists) == 3 and "continue" not in lists[2].query and "limit" not in lists[2].query
    assert names(h.last.services) == [f"s{i}" for i in range(9)]


# -- one kind denied or missing -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_forbidden_kind_after_sync_keeps_its_objects_and_others_go_on(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    # The Role loses "secrets" while running: the Secret watch fails with 403 over and over;
    # the Secrets already known stay (the last good state), every other kind keeps following.
    h.kube.put({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": "cert"}, "data": {"tls.crt": "eA==", "tls.key": "eA=="}})
    w = await h.start_watching("secrets")
    with caplog.at_level(logging.ERROR, logger="ingresslib.kube"):
        h.kube.fail_next("secrets", 403, times=10_000, message='secrets is forbidden')
        h.kube.drop("secrets")
        await eventually(lambda: w.stats.stream_errors >= 3)
        h.kube.put(svc("web"))
        await eventually(lambda: names(h.last.services) == ["web"])
    assert names(h.last.secrets) == ["cert"]
    assert "Secret list/watch denied" in caplog.text and "HTTP 403" in caplog.text
    h.kube.clear_failures()
    await h.watching("secrets")  # a fixed Role takes effect without a restart


@pytest.mark.asyncio
async def test_missing_kind_holds_back_the_first_table_while_others_are_watched(
        h: Harness) -> None:
    # docs/cluster.md: a kind whose list keeps failing delays the first table (no table of
    # Ingresses without their endpoints); the other kinds are listed and watched meanwhile,
    # and the table comes as soon as the kind can be listed.
    h.kube.put(svc("web"))
    h.kube.fail_next("endpointslices", 404, times=10_000, message="the server could not find "
                     "the requested resource")
    w = h.start()
    await h.watching("services")
    await eventually(lambda: w.stats.stream_errors >= 3)
    assert not w.synced.is_set() and h.snapshots == []
    h.kube.clear_failures()
    await h.synced()
    assert names(h.last.services) == ["web"]


# -- backoff ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_backoff_is_capped_and_starts_again_after_a_healthy_watch(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    delays = record_backoff_sleeps(monkeypatch)
    w = h.start(backoff=Backoff(initial=0.01, maximum=0.04, factor=2, jitter=0,
                                reset_after=0.3))
    await h.synced()
    await h.watching("services")
    h.kube.fail_next("services", 503, times=5)
    h.kube.drop("services")
    await eventually(lambda: len(delays) == 6)
    assert delays == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04]  # doubling, then capped
    await h.watching("services")
    await asyncio.sleep(0.4)  # healthy for longer than reset_after
    h.kube.drop("services")
    await eventually(lambda: len(delays) == 7)
    assert delays[-1] == 0.01  # the count started afresh
    assert w.stats.reconnects == 7


# -- nothing lost, nothing twice ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_changes_while_disconnected_come_once_after_reconnect(h: Harness) -> None:
    h.kube.put(svc("a"))
    h.kube.put(svc("b"))
    w = await h.start_watching("services")
    h.kube.fail_next("services", 503, times=2)
    h.kube.drop("services")
    # Meanwhile (the watch is down): b deleted, c created, a modified.
    h.kube.delete("Service", "default", "b")
    h.kube.put(svc("c"))
    h.kube.put(svc("a", 81))
    await eventually(lambda: names(h.last.services) == ["a", "c"])
    await h.watching("services")
    assert h.last.services[0].spec.ports[0].port == 81
    assert w.stats.events == 3 and w.stats.relists == 0  # each change applied exactly once
    assert h.kube.count("services", watch=False) == 1


# -- silence and broken items -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_watch_request_never_answered_is_retried_after_idle_timeout(h: Harness) -> None:
    # The API server (or a proxy) accepts the watch and never sends a status line: lightkube's
    # watch timeout has no read limit, so only the idle timeout gets the kind going again.
    h.kube.put(svc("web"))
    w = await h.start_watching("services", idle_timeout=0.3)
    h.kube.hang_next("services")
    h.kube.drop("services")
    await eventually(lambda: len(_watches(h.kube, "services")) >= 3)
    await h.watching("services")
    assert w.stats.idle_reconnects >= 1
    h.kube.put(svc("more"))
    await eventually(lambda: names(h.last.services) == ["more", "web"])


@pytest.mark.asyncio
async def test_list_never_answered_times_out_and_is_retried(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    # A list has the client's timeout (lightkube: 10 s by default; 1 s here): a list that
    # never gets an answer fails, is counted and retried, and the kind then syncs. (On a loaded
    # machine another kind's connect may time out too, and is counted and retried as well:
    # session 25's fresh-clone CI run hit 4 with 0.3 s; and session 31's saw such a later
    # failure take ``last_error``: the services list's own failure is read from the log.)
    caplog.set_level(logging.WARNING, logger="ingresslib")
    from lightkube import AsyncClient, KubeConfig
    from lightkube.core.generic_client import httpx  # httpx2 with lightkube 1.x

    from _fake_kube import kubeconfig_dict

    client = AsyncClient(config=KubeConfig.from_dict(kubeconfig_dict(h.url)),
                         timeout=httpx.Timeout(1.0))
    h.kube.put(svc("web"))
    h.kube.hang_next("services")
    try:
        w = h.start(client=client)
        await h.synced()
        assert names(h.last.services) == ["web"]
        assert w.stats.stream_errors >= 1
        hung = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("Service list failed (")]
        assert hung and "Timeout" in hung[0], [r.getMessage() for r in caplog.records]
    finally:
        await h.stop()
        await client.close()


@pytest.mark.asyncio
async def test_list_item_without_a_name_is_skipped_not_the_whole_list(h: Harness) -> None:
    # Regression: one list item that could not be keyed made replace_all raise, so the list
    # failed, was retried, failed again... and the first table never came.
    h.kube.put({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "good"}, "spec": {"defaultBackend": {
                    "service": {"name": "web", "port": {"number": 80}}}}})
    h.kube.objects["ingresses"][("default", "")] = {
        "kind": "Ingress", "metadata": {"namespace": "default"}, "spec": {}}
    w = h.start()
    await h.synced()
    assert names(h.last.ingresses) == ["good"]
    assert w.stats.garbage == 1 and "metadata.name" in w.stats.last_error


@pytest.mark.asyncio
async def test_objects_outside_the_selectors_never_reach_the_store(h: Harness) -> None:
    # Regression: the watcher trusted the server to apply fieldSelector=type=kubernetes.io/tls
    # and the service-name label selector. A server or proxy that ignores them brought every
    # Secret (passwords included) into the process.
    h.kube.ignore_selectors = True

    def secret(name: str, type_: str) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Secret", "type": type_, "metadata": {"name": name},
                "data": {"tls.crt": "eA==", "tls.key": "eA=="}}

    def eps(name: str, labels: dict[str, str]) -> dict[str, object]:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "labels": labels}, "addressType": "IPv4",
                "endpoints": []}

    h.kube.put(secret("cert", "kubernetes.io/tls"))
    h.kube.put(secret("password", "Opaque"))
    h.kube.put(eps("web-1", {"kubernetes.io/service-name": "web"}))
    h.kube.put(eps("stray", {}))
    w = h.start()
    await h.synced()
    assert names(h.last.secrets) == ["cert"]
    assert names(h.last.endpoint_slices) == ["web-1"]
    await h.watching("secrets")
    await h.watching("endpointslices")
    h.kube.put(secret("token", "kubernetes.io/service-account-token"))
    h.kube.put(eps("web-1", {}))  # the label removed: it no longer belongs to a Service
    h.kube.put(secret("cert2", "kubernetes.io/tls"))
    await eventually(lambda: names(h.last.secrets) == ["cert", "cert2"])
    await eventually(lambda: names(h.last.endpoint_slices) == [])
    assert ("v1/Secret", "default", "token") not in w.store.keys()


@pytest.mark.asyncio
async def test_made_up_event_types_do_not_become_metric_labels(h: Harness) -> None:
    # Regression: every event type was handed to the metrics as a label value, so a server
    # sending made-up types grew the Prometheus series without bound.
    seen: list[tuple[str, str]] = []

    class Recorder:
        def watch_event(self, kind: str, event_type: str) -> None:
            seen.append((kind, event_type))

        def watch_error(self, kind: str) -> None: ...
        def watch_reconnect(self, kind: str) -> None: ...
        def watch_relist(self, kind: str) -> None: ...

    w = await h.start_watching("services", metrics=Recorder())
    for i in range(20):
        h.kube.raw_event("services", f"NOISE{i}", dict(svc(f"n{i}"), metadata={
            "name": f"n{i}", "namespace": "default", "resourceVersion": str(500 + i)}))
    h.kube.put(svc("real"))
    await eventually(lambda: names(h.last.services) == ["real"])
    assert seen == [("Service", "ADDED")] and w.stats.garbage == 20


@pytest.mark.asyncio
async def test_list_without_resource_version_watches_from_the_most_recent(h: Harness) -> None:
    # Regression: a list with no metadata.resourceVersion raised (lightkube's NotReadyError),
    # and the kind was re-listed forever: no first table, ever.
    h.kube.omit_list_version = True
    h.kube.put(svc("a"))
    w = await h.start_watching("services")
    assert "resourceVersion" not in _watches(h.kube, "services")[0].query
    h.kube.put(svc("b"))  # created after the list: the watch brings it
    await eventually(lambda: names(h.last.services) == ["a", "b"])
    assert w.stats.stream_errors == 0 and w.stats.garbage == 0


@pytest.mark.asyncio
async def test_endless_line_is_refused_not_buffered(h: Harness,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: lines were read with aiter_lines, which buffers until a newline comes: a
    # server sending bytes and never a newline grew our memory without end, and the watch
    # was stuck (no event, no error, the idle timeout never fired as bytes kept coming).
    monkeypatch.setattr(ingresslib._kube, "_MAX_EVENT_BYTES", 4096)
    h.kube.put(svc("web"))
    w = await h.start_watching("services")
    rv = w.stats.resource_versions["Service"]
    for _ in range(5):
        h.kube.raw_bytes("services", b'{"type": "ADDED", "object": {"x": "' + b"y" * 1000)
    await eventually(lambda: len(_watches(h.kube, "services")) == 2)
    assert _watches(h.kube, "services")[-1].query["resourceVersion"] == rv
    assert w.stats.garbage == 1 and "4096 bytes" in w.stats.last_error
    await h.watching("services")
    h.kube.put(svc("more"))
    await eventually(lambda: names(h.last.services) == ["more", "web"])


# -- stopping -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_cancel_is_never_swallowed_by_a_busy_stream() -> None:
    # Regression: _idle_guard awaited each item with asyncio.wait_for, which on Python 3.11
    # returns the item instead of raising when the item is ready as the task is cancelled
    # (measured: 35 cancels of 50 lost). A watch with a steady flow of events then ignored
    # stop, and asyncio.run hung at exit waiting for it.
    from ingresslib._kube import _idle_guard

    running = True

    async def busy() -> AsyncIterator[int]:
        while running:
            await asyncio.sleep(0)
            yield 1

    async def consume() -> None:
        async for _ in _idle_guard(busy(), 10):
            pass

    lost = 0
    for i in range(30):
        task = asyncio.create_task(consume())
        for _ in range(i % 7 + 1):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=0.5)
        if not done:
            lost += 1
            running = False
            await asyncio.wait([task])
            running = True
        else:
            assert task.cancelled()
    assert lost == 0


@pytest.mark.asyncio
async def test_stop_during_an_event_storm(h: Harness) -> None:
    w = await h.start_watching("services")
    storm = True

    async def flood() -> None:
        i = 0
        while storm:
            h.kube.put(svc(f"s{i % 50}", 80 + i % 7))
            i += 1
            await asyncio.sleep(0)

    flooder = asyncio.create_task(flood())
    await eventually(lambda: w.stats.events > 200)
    h._stop.set()
    assert h._task is not None
    done, _ = await asyncio.wait([h._task], timeout=3)
    storm = False
    await flooder
    assert done, "the watcher ignored stop"
