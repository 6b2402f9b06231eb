"""Session 15 follow-up (K15b) on the two Secret watches sharing one store (commit 6350115):
``AuthSecrets`` must judge "already in the store" by ownership (``ResourceStore.holds`` with the
auth watch's ``where``), not by whatever Secret is shown under the name.

The case: Secret ``s`` was ``kubernetes.io/tls``, was deleted and re-created ``Opaque``; the TLS
watch lags (its replay of the old object is what the store shows). An Ingress then names ``s``
for basic auth. Before, ``_fetch`` saw "a Secret ``s`` is stored" and skipped the ``get``: the
routes read the stale TLS Secret (no key ``auth``: 503) until the next event or list of the auth
watch, which for an unchanged Secret may be a re-list minutes later.

``test_a_newly_named_secret_is_fetched_though_the_tls_watch_shows_that_name`` and
``test_a_failed_get_is_retried_though_the_tls_watch_shows_that_name`` failed on the code before
the fix (no ``get``; the stale TLS Secret stayed shown); ``test_holds_*`` failed (no
``holds``). The others are guards of the neighbouring cases, which the per-watch store already
handled (named as such in each): they pass with the old ``_kube_auth.py`` too (checked with
the new ``_store.py``, whose ``holds`` they use as a probe of what each watch holds).

Every server here is tests/_fake_kube_s14.py's, bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from _fake_kube import _event
from _fake_kube_s14 import FakeKubeS14
from ingresslib._kube import Backoff
from ingresslib._store import ResourceStore
from test_kube import Harness, eventually, svc
from test_kube_s14 import auth_secret, basic_ingress, secret_names, start_with_auth
# The Secret watches' kinds and store tests, and the harness fixture, are the per-watch tests'.
from test_kube_watch_s15 import GVK, KINDS_WITH_AUTH, OPAQUE, TLS, TLS_SECRETS, h  # noqa: F401

pytestmark = pytest.mark.network

KEY = (GVK, "default", "s")


def tls_secret(name: str, rv: str = "50") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}


def shown(res: Any) -> dict[str, str]:
    return {s.metadata.name: s.type for s in res.secrets}


def watch_of(kube: FakeKubeS14, type_: str) -> Any:
    """The open Secret watch whose field selector takes ``type_``."""
    (w,) = [x for x in kube.watches if x.plural == "secrets"
            and x.accept({"type": type_, "metadata": {"namespace": "default"}})]
    return w


async def _stale_tls_shown(h: Harness) -> Any:
    """Both Secret watches running, "passwords" named (so the auth watch runs), Opaque "s" in
    the cluster but named by no Ingress (the auth watch dropped it), and the TLS watch replaying
    its old TLS "s" (as after the delete and re-create it has not yet reported): the store
    shows that stale TLS "s"."""
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              auth_secret("passwords", {"alice": "pw"}),
                              auth_secret("s", {"bob": "pw"}), secret_watches=2)
    assert secret_names(h.last) == ["default/passwords"]  # "s" is named by none: dropped
    events = w.stats.events
    watch_of(h.kube, "kubernetes.io/tls").queue.put_nowait(
        ("line", _event("MODIFIED", tls_secret("s"))))
    await eventually(lambda: w.stats.events == events + 1)
    await eventually(lambda: shown(h.last).get("s") == "kubernetes.io/tls")
    return w


# -- the store's ownership-aware lookup ------------------------------------------------------


def test_holds_answers_for_the_watch_asked_shown_or_kept_behind() -> None:
    store = ResourceStore()
    assert not store.holds(KEY, OPAQUE) and not store.holds(KEY)
    store.apply("MODIFIED", tls_secret("s"), kind=GVK, where=TLS)
    # Another watch's Secret is shown: the auth watch holds nothing under the name.
    assert KEY in store and store.holds(KEY) and store.holds(KEY, TLS)
    assert not store.holds(KEY, OPAQUE)
    store.apply("ADDED", auth_secret("s", {"bob": "pw"}), kind=GVK, where=OPAQUE)
    assert store.holds(KEY, OPAQUE) and store.holds(KEY, TLS)  # TLS kept behind
    store.apply("MODIFIED", tls_secret("s", "51"), kind=GVK, where=TLS)  # a replay again
    assert shown(store.snapshot()) == {"s": "kubernetes.io/tls"}
    assert store.holds(KEY, OPAQUE)  # the Opaque one is behind now, still held
    store.apply("DELETED", tls_secret("s"), kind=GVK, where=TLS)
    assert store.holds(KEY, OPAQUE) and not store.holds(KEY, TLS)


def test_holds_counts_no_invalid_object() -> None:
    # As ``in``: a valid object. An invalid Opaque "s" (error only) is not one to serve.
    store = ResourceStore()
    bad = auth_secret("s", {"a": "b"}) | {"data": {"a b": "eA=="}}
    store.apply("ADDED", bad, kind=GVK, where=OPAQUE)
    assert KEY in store.errors and not store.holds(KEY, OPAQUE) and KEY not in store


# -- AuthSecrets fetches what its own watch does not hold ------------------------------------


@pytest.mark.asyncio
async def test_a_newly_named_secret_is_fetched_though_the_tls_watch_shows_that_name(
        h: Harness) -> None:
    # Before: no get ("a Secret s is stored"), the stale TLS "s" stayed shown, and the basic-auth
    # routes read it (no key "auth": 503) until the auth watch's next event or list.
    w = await _stale_tls_shown(h)
    h.kube.put(basic_ingress("other", "s", host="b.example"))
    await eventually(lambda: ("secrets", "default", "s") in h.kube.gets, timeout=2)
    await eventually(lambda: shown(h.last) == {"passwords": "Opaque", "s": "Opaque"})
    (s,) = [x for x in h.last.secrets if x.metadata.name == "s"]
    assert b"bob:" in s.get_bytes("auth")
    # The get's result goes over the other watch's object (kept behind, not replaced) and
    # survives that watch's late DELETED of it.
    assert w.store.holds(KEY, TLS)
    events = w.stats.events
    watch_of(h.kube, "kubernetes.io/tls").queue.put_nowait(
        ("line", _event("DELETED", tls_secret("s", "51"))))
    await eventually(lambda: w.stats.events == events + 1)
    await asyncio.sleep(0.15)  # past the debounce
    assert shown(h.last) == {"passwords": "Opaque", "s": "Opaque"}
    assert not w.store.holds(KEY, TLS) and w.store.holds(KEY, OPAQUE)


@pytest.mark.asyncio
async def test_a_failed_get_is_retried_though_the_tls_watch_shows_that_name(
        h: Harness) -> None:
    # The retry path has the same test: a get of "s" fails (500); before its retry is due, the
    # TLS watch's stale "s" is shown. Before: the retry was skipped for good.
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              auth_secret("passwords", {"alice": "pw"}),
                              auth_secret("s", {"bob": "pw"}), secret_watches=2,
                              backoff=Backoff(initial=0.3, factor=2.0, maximum=1.0, jitter=0.0))
    assert isinstance(h.kube, FakeKubeS14)
    h.kube.fail_next("secrets", 500)
    h.kube.put(basic_ingress("other", "s", host="b.example"))
    await eventually(lambda: h.kube.get_count("secrets") == 1)
    events = w.stats.events
    watch_of(h.kube, "kubernetes.io/tls").queue.put_nowait(
        ("line", _event("MODIFIED", tls_secret("s"))))
    await eventually(lambda: w.stats.events == events + 1)
    await eventually(lambda: h.kube.get_count("secrets") == 2, timeout=3)
    await eventually(lambda: shown(h.last) == {"passwords": "Opaque", "s": "Opaque"})


@pytest.mark.asyncio
async def test_no_get_when_the_auth_watchs_own_secret_is_kept_behind(h: Harness) -> None:
    # Guard (passed with the old ``_fetch`` too, which saw the TLS "s" shown): "held" counts
    # this watch's object kept behind the other's, so a retry due for a Secret its watch has
    # spoken for since reads nothing more. The get of newly named "s" fails; the auth watch
    # then reports "s" itself; the TLS watch's stale replay is shown over it; the retry comes
    # due: no second get. The TLS watch's DELETED brings the Opaque "s" back to the front.
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              auth_secret("passwords", {"alice": "pw"}),
                              auth_secret("s", {"bob": "pw"}), secret_watches=2,
                              backoff=Backoff(initial=0.3, factor=2.0, maximum=1.0, jitter=0.0))
    assert isinstance(h.kube, FakeKubeS14)
    h.kube.fail_next("secrets", 500)
    h.kube.put(basic_ingress("other", "s", host="b.example"))
    await eventually(lambda: h.kube.get_count("secrets") == 1)
    h.kube.put(auth_secret("s", {"bob": "new"}))
    await eventually(lambda: shown(h.last).get("s") == "Opaque")
    tls_watch = watch_of(h.kube, "kubernetes.io/tls")
    tls_watch.queue.put_nowait(("line", _event("MODIFIED", tls_secret("s"))))
    await eventually(lambda: shown(h.last).get("s") == "kubernetes.io/tls")
    assert w.store.holds(KEY, OPAQUE)
    await asyncio.sleep(0.8)  # the retry was due after 0.3 s
    assert h.kube.get_count("secrets") == 1
    tls_watch.queue.put_nowait(("line", _event("DELETED", tls_secret("s", "51"))))
    await eventually(lambda: shown(h.last) == {"passwords": "Opaque", "s": "Opaque"})


# -- the auth watch's events and lists for a name the TLS watch shows (guards) ---------------


@pytest.mark.asyncio
async def test_auth_watch_events_for_a_name_the_tls_watch_shows(h: Harness) -> None:
    # Guard (passed before): admit judges by name only, and the store by owner. A named
    # Secret's event goes over the TLS watch's object; an unnamed one's DELETED leaves the
    # TLS watch's object alone; an unnamed one's ADDED is dropped (not shown, not kept behind).
    w = await _stale_tls_shown(h)
    events = w.stats.events
    h.kube.put(auth_secret("s", {"bob": "new"}))  # "s" still named by none: dropped
    h.kube.delete("Secret", "default", "s")  # its DELETED reaches the store: removes nothing
    h.kube.put(auth_secret("s", {"bob": "third"}))
    h.kube.put(auth_secret("passwords", {"alice": "pw2"}))  # named: after the three above
    await eventually(lambda: w.stats.events == events + 2)  # the DELETED and "passwords"
    await asyncio.sleep(0.15)  # past the debounce
    assert shown(h.last) == {"passwords": "Opaque", "s": "kubernetes.io/tls"}
    assert not w.store.holds(KEY, OPAQUE)
    # "passwords" gets a stale TLS replay shown over it; the auth watch's MODIFIED for that
    # named Secret comes after: it is shown, the TLS one kept behind until its own DELETED.
    tls_watch = watch_of(h.kube, "kubernetes.io/tls")
    tls_watch.queue.put_nowait(("line", _event("MODIFIED", tls_secret("passwords"))))
    await eventually(lambda: shown(h.last).get("passwords") == "kubernetes.io/tls")
    h.kube.put(auth_secret("passwords", {"alice": "new"}))
    await eventually(lambda: shown(h.last).get("passwords") == "Opaque")
    tls_watch.queue.put_nowait(("line", _event("DELETED", tls_secret("passwords", "51"))))
    await asyncio.sleep(0.15)
    assert shown(h.last).get("passwords") == "Opaque"


@pytest.mark.asyncio
async def test_auth_relist_for_a_name_the_tls_watch_shows(h: Harness) -> None:
    # Guard (passed before): the auth watch re-lists (410); its list names "passwords" (kept)
    # but not "s" (named by none): the stale TLS "s" stays shown, and the Opaque
    # "passwords" goes over a TLS replay of that name.
    w = await _stale_tls_shown(h)
    tls_watch = watch_of(h.kube, "kubernetes.io/tls")
    tls_watch.queue.put_nowait(("line", _event("MODIFIED", tls_secret("passwords"))))
    await eventually(lambda: shown(h.last).get("passwords") == "kubernetes.io/tls")
    lists = w.stats.lists
    from _fake_kube import _status

    auth_watch = watch_of(h.kube, "Opaque")
    auth_watch.queue.put_nowait(("line", _event("ERROR", _status(
        410, "Expired", "too old resource version"))))
    auth_watch.queue.put_nowait(("end", b""))
    await eventually(lambda: w.stats.lists == lists + 1)
    await eventually(lambda: shown(h.last) == {"passwords": "Opaque", "s": "kubernetes.io/tls"})
    assert w.store.holds((GVK, "default", "passwords"), TLS)


# -- a Secret stopped being named while only kept behind (guard) -----------------------------


@pytest.mark.asyncio
async def test_unnamed_secret_kept_behind_leaves_memory(h: Harness) -> None:
    # Guard (passed before): Opaque "s" named and stored, a TLS replay shown over it; then no
    # Ingress names "s" any more. The auth watch's copy leaves the store though not shown;
    # the TLS watch's DELETED then leaves nothing (before the per-watch store, or with a
    # DELETED that missed the copy kept behind, the Opaque "s" came back into view).
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              basic_ingress("other", "s", host="b.example"),
                              auth_secret("passwords", {"alice": "pw"}),
                              auth_secret("s", {"bob": "pw"}), secret_watches=2)
    tls_watch = watch_of(h.kube, "kubernetes.io/tls")
    tls_watch.queue.put_nowait(("line", _event("MODIFIED", tls_secret("s"))))
    await eventually(lambda: shown(h.last).get("s") == "kubernetes.io/tls")
    assert w.store.holds(KEY, OPAQUE)
    h.kube.delete("Ingress", "default", "other")
    await eventually(lambda: not w.store.holds(KEY, OPAQUE))
    assert w.store.holds(KEY, TLS)
    tls_watch.queue.put_nowait(("line", _event("DELETED", tls_secret("s", "51"))))
    await eventually(lambda: shown(h.last) == {"passwords": "Opaque"})
    assert KEY not in w.store
    # Named again: fetched by name, shown.
    h.kube.put(basic_ingress("other", "s", host="b.example"))
    await eventually(lambda: shown(h.last) == {"passwords": "Opaque", "s": "Opaque"})
    assert h.kube.gets == [("secrets", "default", "s")]
