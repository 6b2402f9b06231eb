"""ResourceStore.replace_all and an object deleted and re-created while the watch was down
(session 22, from the cluster-watch review X8)."""

from __future__ import annotations

from typing import Any

from ingresslib._store import ResourceStore


def _svc(uid: str, port: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": uid},
            "spec": {"ports": [{"port": port}]}}


def test_an_invalid_recreated_object_drops_the_deleted_one_on_relist() -> None:
    # A connected watch sees DELETED (u1) then ADDED (u2, invalid): the name is left out. A
    # re-list after 410 Gone must end the same way, not keep serving u1's last valid version.
    store = ResourceStore()
    store.apply("ADDED", _svc("u1", 80))
    store.replace_all("v1/Service", [{"metadata": {"name": "web", "namespace": "default",
                                                    "uid": "u2"},
                                       "spec": {"ports": [{"port": 0}]}}])
    assert store.snapshot().services == ()


def test_an_invalid_update_of_the_same_object_keeps_its_last_valid_version() -> None:
    store = ResourceStore()
    store.apply("ADDED", _svc("u1", 80))
    store.replace_all("v1/Service", [{"metadata": {"name": "web", "namespace": "default",
                                                    "uid": "u1"},
                                       "spec": {"ports": [{"port": 0}]}}])
    [kept] = store.snapshot().services
    assert kept.metadata.uid == "u1" and kept.spec.ports[0].port == 80


def test_the_connected_watch_ends_the_same_way() -> None:
    store = ResourceStore()
    store.apply("ADDED", _svc("u1", 80))
    store.apply("DELETED", _svc("u1", 80))
    store.apply("ADDED", _svc("u2", 0))
    assert store.snapshot().services == ()
