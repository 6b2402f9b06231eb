"""Session 15 review of the cluster watch's bookkeeping (tests/_fake_kube_s14.py on 127.0.0.1):
the two Secret watches (``type: kubernetes.io/tls`` and the basic-auth ``type: Opaque``) share
the Secret kind in one store; each must only replace, delete and clear its own objects and
errors. The auth Secret watch stops once no Ingress names a Secret; failed ``get``s back off per
attempt; a list item that is no object is skipped.

Every test here failed on the code before its fix, except
``test_a_single_watch_kind_keeps_nothing_behind``: a guard that the per-watch bookkeeping added
for two Secret watches changes nothing for a kind with one watch (no ``where``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import _fake_kube
from ingresslib._kube import AUTH_SECRETS, WATCHED_KINDS, Backoff, _model_test
from ingresslib._store import ResourceStore

from _fake_kube import _event
from _fake_kube_s14 import FakeKubeS14
from test_kube import Harness, eventually, ingress, names, svc
# The harness fixture and the kinds with the auth watch are session 14's.
from test_kube_s14 import (KINDS_WITH_AUTH, auth_secret, basic_ingress, h,  # noqa: F401
                           opaque_requests, secret_names, start_with_auth)

pytestmark = pytest.mark.network

TLS_SECRETS = next(k for k in WATCHED_KINDS if k.kind == "Secret")
#: Without the TLS Secret watch: every Secret request is the auth watch's.
AUTH_ONLY = (*[k for k in WATCHED_KINDS if k.kind != "Secret"], AUTH_SECRETS)
TLS = _model_test(TLS_SECRETS)
OPAQUE = _model_test(AUTH_SECRETS)
GVK = "v1/Secret"


def tls_secret(name: str, *, key: bool = True) -> dict[str, Any]:
    """A TLS Secret; without ``tls.key`` it is invalid (ValidateSecret: tls.key required)."""
    data = {"tls.crt": "eA==", **({"tls.key": "eA=="} if key else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/tls", "data": data}


def types(store: ResourceStore) -> dict[str, str]:
    return {s.metadata.name: s.type for s in store.snapshot().secrets}


def watch_of(kube: FakeKubeS14, type_: str) -> Any:
    """The open Secret watch whose field selector takes ``type_``."""
    (w,) = [x for x in kube.watches if x.plural == "secrets"
            and x.accept({"type": type_, "metadata": {"namespace": "default"}})]
    return w


# -- 1. a re-list replaces only its own watch's error entries ------------------------------------


def test_relist_of_one_secret_watch_keeps_the_other_watchs_errors() -> None:
    # Before: replace_all dropped every Secret error missing from the list, whichever watch
    # recorded it: an Opaque re-list erased the TLS watch's report of an invalid certificate
    # Secret (and the reverse), so store.errors no longer said why its routes had no certificate.
    store = ResourceStore()
    store.apply("ADDED", tls_secret("badcert", key=False), kind=GVK, where=TLS)
    store.apply("ADDED", auth_secret("badauth", {"a": "b"}) | {"data": {"a b": "eA=="}},
                kind=GVK, where=OPAQUE)
    bad_tls, bad_auth = (GVK, "default", "badcert"), (GVK, "default", "badauth")
    assert set(store.errors) == {bad_tls, bad_auth}
    store.replace_all(GVK, [], where=OPAQUE)  # the auth watch re-lists: its Secret is gone
    assert set(store.errors) == {bad_tls}
    store.replace_all(GVK, [], where=TLS)
    assert set(store.errors) == set()


def test_delete_or_valid_version_from_one_watch_keeps_the_other_watchs_error() -> None:
    # The same for one key: the TLS watch's DELETED of "s" (deleted, re-created Opaque) must
    # not clear the error of the invalid Opaque "s" the auth watch reported, whichever comes
    # first; nor must the TLS watch's valid object clear the auth watch's error.
    store = ResourceStore()
    key = (GVK, "default", "s")
    store.apply("ADDED", tls_secret("s"), kind=GVK, where=TLS)
    bad = auth_secret("s", {"a": "b"}) | {"data": {"a b": "eA=="}}
    store.apply("ADDED", bad, kind=GVK, where=OPAQUE)
    assert key in store.errors
    store.apply("DELETED", tls_secret("s"), kind=GVK, where=TLS)
    assert key in store.errors and types(store) == {}
    store.apply("MODIFIED", tls_secret("s"), kind=GVK, where=TLS)  # a lagging replay
    assert key in store.errors
    store.apply("DELETED", bad, kind=GVK, where=OPAQUE)
    assert key not in store.errors


@pytest.mark.asyncio
async def test_auth_watch_relist_keeps_the_tls_watchs_error(h: Harness) -> None:
    # End to end: the TLS watch reports an invalid certificate Secret; the auth Secret watch
    # then gets 410 and re-lists. The error stays (it is still true).
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              auth_secret("passwords", {"alice": "pw"}),
                              tls_secret("badcert", key=False), secret_watches=2)
    key = (GVK, "default", "badcert")
    assert key in w.store.errors
    lists = w.stats.lists
    auth_watch = watch_of(h.kube, "Opaque")
    auth_watch.queue.put_nowait(("line", _event("ERROR", _fake_kube._status(
        410, "Expired", "too old resource version"))))
    auth_watch.queue.put_nowait(("end", b""))
    await eventually(lambda: w.stats.lists == lists + 1)
    assert key in w.store.errors
    assert secret_names(w.store.snapshot()) == ["default/passwords"]


# -- 2. what each Secret watch may overwrite or delete -------------------------------------------


def test_stale_tls_object_then_its_delete_leave_the_opaque_secret() -> None:
    # Secret "s" was TLS, was deleted and re-created Opaque. The auth watch reports the new one;
    # the TLS watch lags (reconnecting) and replays its old MODIFIED, then its DELETED. Before,
    # the replay overwrote the Opaque Secret and the DELETED removed the key: the Opaque Secret,
    # which exists, was gone from the store until the auth watch's next re-list (maybe never).
    store = ResourceStore()
    store.apply("ADDED", auth_secret("s", {"alice": "pw"}), kind=GVK, where=OPAQUE)
    store.apply("MODIFIED", tls_secret("s"), kind=GVK, where=TLS)
    store.apply("DELETED", tls_secret("s"), kind=GVK, where=TLS)
    assert types(store) == {"s": "Opaque"}
    # The same through the TLS watch's lists (a list answered from before the delete).
    store.replace_all(GVK, [tls_secret("s")], where=TLS)
    store.replace_all(GVK, [], where=TLS)
    assert types(store) == {"s": "Opaque"}
    # The other way round: Opaque "s" deleted, re-created TLS; the auth watch lags.
    store.apply("ADDED", tls_secret("s"), kind=GVK, where=TLS)
    assert types(store) == {"s": "kubernetes.io/tls"}  # the newest write is shown
    store.apply("DELETED", auth_secret("s", {}), kind=GVK, where=OPAQUE)
    assert types(store) == {"s": "kubernetes.io/tls"}
    store.apply("DELETED", tls_secret("s"), kind=GVK, where=TLS)
    assert types(store) == {}  # nothing kept behind: the auth watch deleted its own


def test_a_single_watch_kind_keeps_nothing_behind() -> None:
    # Without where (one watch per kind), a write replaces and a delete removes: no hidden copy.
    store = ResourceStore()
    store.apply("ADDED", auth_secret("s", {"alice": "pw"}), kind=GVK)
    store.apply("MODIFIED", tls_secret("s"), kind=GVK)
    store.apply("DELETED", tls_secret("s"), kind=GVK)
    assert types(store) == {}
    store.apply("ADDED", auth_secret("s", {"alice": "pw"}), kind=GVK)
    store.replace_all(GVK, [tls_secret("s")])
    store.replace_all(GVK, [])
    assert types(store) == {} and len(store) == 0


@pytest.mark.asyncio
async def test_lagging_tls_watch_does_not_remove_a_recreated_opaque_secret(h: Harness) -> None:
    # End to end with both watches: the auth Secret "passwords" is in; the TLS watch then
    # delivers an old TLS "passwords" and its DELETED (a lagging watch's replay of a delete and
    # re-create with another type). The auth Secret stays, and so do its users.
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              auth_secret("passwords", {"alice": "pw"}), secret_watches=2)
    tls_watch = watch_of(h.kube, "kubernetes.io/tls")
    old = tls_secret("passwords")
    old["metadata"]["resourceVersion"] = "50"
    gone = dict(old, metadata=dict(old["metadata"], resourceVersion="51"))
    events = w.stats.events
    tls_watch.queue.put_nowait(("line", _event("MODIFIED", old)))
    tls_watch.queue.put_nowait(("line", _event("DELETED", gone)))
    await eventually(lambda: w.stats.events == events + 2)
    await asyncio.sleep(0.15)  # past the debounce
    assert [(s.metadata.name, s.type) for s in h.last.secrets] == [("passwords", "Opaque")]
    assert (GVK, "default", "passwords") in w.store


# -- 3. the auth Secret watch stops when nothing names a Secret ----------------------------------


class _Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def watch_event(self, kind: str, event_type: str) -> None:
        self.events.append((kind, event_type))

    def watch_error(self, kind: str) -> None:
        pass

    def watch_reconnect(self, kind: str) -> None:
        pass

    def watch_relist(self, kind: str) -> None:
        pass


@pytest.mark.asyncio
async def test_auth_watch_stops_when_the_last_basic_auth_ingress_goes(h: Harness) -> None:
    # Before: once started, the watch of every Opaque Secret ran for good, receiving (and
    # dropping) each change of every Opaque Secret in the cluster after the last Ingress that
    # named one was deleted. Now it stops, and starts again (with a fresh list) when one is
    # named again.
    seen = _Events()
    h.kube.put(svc("web"))
    h.kube.put(basic_ingress("staff", "passwords"))
    h.kube.put(auth_secret("passwords", {"alice": "pw"}))
    h.kube.put(auth_secret("other", {"bob": "pw"}))
    w = await h.start_watching("secrets", kinds=AUTH_ONLY, metrics=seen)
    assert secret_names(h.last) == ["default/passwords"]
    h.kube.delete("Ingress", "default", "staff")
    await eventually(lambda: h.last.ingresses == () and secret_names(h.last) == [])
    await asyncio.sleep(0.1)
    requests = len(opaque_requests(h.kube))
    h.kube.end("secrets")  # a running watch would re-watch after this normal end
    h.kube.put(auth_secret("other", {"bob": "new"}))
    h.kube.put(auth_secret("passwords", {"alice": "new"}))
    await asyncio.sleep(0.3)
    assert len(opaque_requests(h.kube)) == requests
    assert [e for e in seen.events if e[0] == "Secret"] == []
    assert [k for k in w.store.keys() if k[0] == GVK] == []
    assert "auth Secret" not in w.stats.resource_versions
    # Named again: a fresh list brings the Secret as it is now (no get: the list has it).
    lists = len(h.kube.list_requests("secrets"))
    h.kube.put(basic_ingress("staff", "passwords"))
    await eventually(lambda: secret_names(h.last) == ["default/passwords"])
    assert len(h.kube.list_requests("secrets")) == lists + 1 and h.kube.gets == []
    assert h.last.secrets[0].data != h.snapshots[0].secrets[0].data
    # And it follows changes again.
    await eventually(lambda: len(h.kube.watch_requests("secrets")) >= 2)
    h.kube.put(auth_secret("passwords", {"alice": "third"}))
    await eventually(lambda: ("Secret", "MODIFIED") in seen.events)


@pytest.mark.asyncio
async def test_a_stopped_auth_watch_does_not_hold_back_later_tables(h: Harness) -> None:
    # Only the first table waits for the auth Secrets' list (session 14): restarting the watch
    # must not hold back the swaps. The restarted list hangs; other changes still come.
    h.kube.put(svc("web"))
    h.kube.put(basic_ingress("staff", "passwords"))
    h.kube.put(auth_secret("passwords", {"alice": "pw"}))
    w = h.start(kinds=AUTH_ONLY)
    await h.synced()
    h.kube.delete("Ingress", "default", "staff")
    await eventually(lambda: h.last.ingresses == ())
    await asyncio.sleep(0.1)
    h.kube.hang_next("secrets")
    lists = len(h.kube.list_requests("secrets"))
    h.kube.put(basic_ingress("staff", "passwords"))
    await eventually(lambda: len(h.kube.list_requests("secrets")) == lists + 1)
    h.kube.put(svc("api"))
    await eventually(lambda: names(h.last.services) == ["api", "web"])
    assert names(h.last.ingresses) == ["staff"] and secret_names(h.last) == []
    assert w.synced.is_set()


# -- 4. failed gets back off per attempt, not per Secret -----------------------------------------


@pytest.mark.asyncio
async def test_secrets_whose_get_fails_together_are_retried_after_one_step(h: Harness) -> None:
    # Before: each failed get of a round added one to the failure count, so N Secrets named at
    # once while the API server was briefly unavailable waited delay(N) (here 60 s for 3),
    # where one failed attempt waits delay(1).
    assert isinstance(h.kube, FakeKubeS14)
    h.kube.put(svc("web"))
    h.kube.put(basic_ingress("staff", "first"))
    for name in ("first", "s1", "s2", "s3"):
        h.kube.put(auth_secret(name, {name: "pw"}))
    h.start(kinds=AUTH_ONLY, backoff=Backoff(initial=0.05, factor=1000.0, maximum=60.0,
                                             jitter=0.0))
    await h.synced()
    await h.watching("secrets")
    h.kube.fail_next("secrets", 500, times=3)  # the three gets of one round
    for i in (1, 2, 3):
        h.kube.put(basic_ingress(f"staff{i}", f"s{i}", host=f"h{i}.example"))
    await eventually(lambda: h.kube.get_count("secrets") >= 3)
    await eventually(lambda: secret_names(h.last) == [
        "default/first", "default/s1", "default/s2", "default/s3"], timeout=3)
    assert h.kube.get_count("secrets") == 6


# -- 5. a list item that is no object is skipped -------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", [7, "text", None, [1, 2], [["a", "b"]]])
async def test_list_item_that_is_not_an_object_is_skipped(
        h: Harness, monkeypatch: pytest.MonkeyPatch, bad: Any) -> None:
    # Before: lightkube builds each item with our dict class, dict(7) raised out of the whole
    # list, every retry got the same list, and the first table never came. ([["a", "b"]]
    # became the object {"a": "b"}.) Now that item is skipped and counted, as a watch event of
    # the wrong shape is.
    real = _fake_kube._send_json

    async def send(writer: Any, status: int, body: Any, headers: Any = None) -> None:
        if isinstance(body, dict) and body.get("kind") == "ServiceList":
            body = dict(body, items=[bad, *body["items"]])
        await real(writer, status, body, headers)

    monkeypatch.setattr(_fake_kube, "_send_json", send)
    h.kube.put(svc("web"))
    h.kube.put(ingress("shop"))
    w = h.start()
    await h.synced()
    assert names(h.last.services) == ["web"] and names(h.last.ingresses) == ["shop"]
    assert w.stats.garbage == 1 and w.stats.stream_errors == 0
    assert "Service list: skipped item" in w.stats.last_error
    assert "not an object" in w.stats.last_error


# -- 1 and 2 together: any interleaving of the two watches ends in the cluster's state -----------


def _secret_version(type_: str, n: int, valid: bool) -> dict[str, Any]:
    import base64

    data = {"n": base64.b64encode(str(n).encode()).decode()}
    if type_ == "kubernetes.io/tls":
        data |= {"tls.crt": "eA==", "tls.key": "eA=="}
    if not valid:
        data["not a key"] = "eA=="  # ValidateSecret: an invalid data key
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
            "type": type_, "data": data}


@given(steps=st.lists(st.tuples(st.sampled_from(["kubernetes.io/tls", "Opaque"]),
                                st.sampled_from(["write", "write", "delete"]), st.booleans()),
                      max_size=12),
       order=st.lists(st.booleans(), max_size=30))
def test_any_interleaving_of_the_two_secret_watches_ends_in_the_clusters_state(
        steps: list[tuple[str, str, bool]], order: list[bool]) -> None:
    # One Secret name, deleted and re-created with either type, each change reported by the
    # watch of its type. The two watches' streams reach the store interleaved in any order
    # (their resource versions are not comparable). Once both are through, the store shows the
    # Secret as it is (its last valid version), with an error exactly when its last write was
    # invalid. Before: a stale object of one watch, then its DELETED, removed the other's.
    live: tuple[str, int, bool, int | None] | None = None  # type, version, valid, last valid
    streams: dict[str, list[tuple[str, dict[str, Any]]]] = {"kubernetes.io/tls": [],
                                                            "Opaque": []}
    n = 0
    for type_, op, valid in steps:
        n += 1
        if live is not None and op == "delete":
            streams[live[0]].append(("DELETED", _secret_version(live[0], live[1], live[2])))
            live = None
            continue
        if live is not None:
            type_ = live[0]  # immutable: a write to the live Secret keeps its type
        etype = "MODIFIED" if live is not None else "ADDED"
        last_valid = n if valid else (live[3] if live is not None else None)
        live = (type_, n, valid, last_valid)
        streams[type_].append((etype, _secret_version(type_, n, valid)))
    store = ResourceStore()
    where = {"kubernetes.io/tls": TLS, "Opaque": OPAQUE}
    queues = {t: list(s) for t, s in streams.items()}
    picks = iter(order)
    while queues["kubernetes.io/tls"] or queues["Opaque"]:
        first = "kubernetes.io/tls" if next(picks, True) else "Opaque"
        t = first if queues[first] else next(k for k in queues if queues[k])
        etype, obj = queues[t].pop(0)
        store.apply(etype, obj, kind=GVK, where=where[t])
    key = (GVK, "default", "s")
    shown = [(s.type, s.get_bytes("n")) for s in store.snapshot().secrets]
    if live is None or live[3] is None:
        assert shown == []
    else:
        assert shown == [(live[0], str(live[3]).encode())]
    assert (key in store.errors) == (live is not None and not live[2])
