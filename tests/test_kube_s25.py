"""Session 25 (K3): cluster objects read as the API server stored them, and exec credentials
renewed at their ``status.expirationTimestamp``.

A Service the API server stored before it added a create-time rule (the topology annotations
that disagree, ``loadBalancerSourceRanges`` on a Service that is not a LoadBalancer or holding a
value that is not a CIDR) keeps being admitted on update (the API server ratchets). The store set
it aside as invalid: its backend had no endpoints and traffic nginx would serve got 503. Such
rules only mirror admission and change no route: the store now serves the object and keeps
the rule in ``warnings`` (logged once per object version). Files keep every rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

import ingresslib._kube as kube_mod
from ingresslib._decode import decode_resources
from ingresslib._errors import ValidationError
from ingresslib._router import Router
from ingresslib._store import ResourceStore

from test_kube import Harness, h, names  # noqa: F401 - h: the fixture

KEY = ("v1/Service", "shop", "web")
MODE = "service.kubernetes.io/topology-mode"
HINTS = "service.kubernetes.io/topology-aware-hints"
LBSR = "service.beta.kubernetes.io/load-balancer-source-ranges"


def service(rv: str = "1", annotations: dict[str, str] | None = None, ns: str = "shop",
            **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": ns, "resourceVersion": rv}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], **spec}}


TOPOLOGY = service(annotations={MODE: "Auto", HINTS: "auto"})
RANGES_ON_CLUSTER_IP = service(loadBalancerSourceRanges=["10.0.0.0/8"])
BAD_CIDR = service(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", "10.0.0.1"])
BAD_ANNOTATION = service(annotations={LBSR: "10.0.0.0/8, nonsense"})


@pytest.mark.parametrize("obj, fields", [
    (TOPOLOGY, [f"metadata.annotations[{MODE}]"]),
    (RANGES_ON_CLUSTER_IP, ["spec.LoadBalancerSourceRanges"]),
    (BAD_CIDR, ["spec.LoadBalancerSourceRanges[1]"]),
    (BAD_ANNOTATION, [f"metadata.annotations[{LBSR}]", f"metadata.annotations[{LBSR}]"]),
], ids=["topology", "ranges-not-lb", "bad-cidr", "bad-annotation"])
def test_admission_only_rules_do_not_set_a_cluster_service_aside(
        obj: dict[str, Any], fields: list[str]) -> None:
    store = ResourceStore()
    store.apply("ADDED", obj)
    assert [s.metadata.ref for s in store.snapshot().services] == ["shop/web"]
    assert dict(store.errors) == {} and store.invalid_total == 0
    assert [e.field for e in store.warnings[KEY]] == fields


@pytest.mark.parametrize("obj", [TOPOLOGY, RANGES_ON_CLUSTER_IP, BAD_CIDR, BAD_ANNOTATION])
def test_files_keep_every_rule(obj: dict[str, Any]) -> None:
    # check / serve -f stand in for the API server: the same object is refused there.
    with pytest.raises(ValidationError):
        decode_resources([obj])


def test_a_rule_ingresslib_routes_by_still_sets_the_object_aside() -> None:
    # An admission-only rule broken next to one a route depends on (port 0): not served,
    # the last valid version kept, the whole error told.
    store = ResourceStore()
    store.apply("ADDED", service())
    store.apply("MODIFIED", service("2", annotations={MODE: "Auto", HINTS: "auto"},
                                    ports=[{"port": 0}]))
    held = store.snapshot().services
    assert [s.metadata.resource_version for s in held] == ["1"]
    fields = [e.field for e in store.errors[KEY].errors]
    assert f"metadata.annotations[{MODE}]" in fields and "spec.ports[0].port" in fields
    assert store.invalid_total == 1
    assert KEY not in store.warnings


def test_warning_logged_once_per_version_and_cleared(caplog: pytest.LogCaptureFixture) -> None:
    store = ResourceStore()
    caplog.set_level(logging.WARNING, logger="ingresslib.store")

    def told() -> int:
        return sum("served as stored" in r.getMessage() for r in caplog.records)

    store.apply("ADDED", TOPOLOGY)
    store.apply("ADDED", TOPOLOGY)  # an informer's resync: the same version
    store.replace_all("Service", [TOPOLOGY])  # a re-list: the same version
    assert told() == 1
    store.apply("MODIFIED", service("2", annotations={MODE: "Auto", HINTS: "auto"}))
    assert told() == 2
    # fixed: the warning goes
    store.apply("MODIFIED", service("3", annotations={MODE: "Auto"}))
    assert KEY not in store.warnings
    store.apply("MODIFIED", service("4", annotations={MODE: "Auto", HINTS: "auto"}))
    assert told() == 3 and KEY in store.warnings
    store.apply("DELETED", service("4"))
    assert dict(store.warnings) == {} and store.snapshot().services == ()
    store.replace_all("Service", [TOPOLOGY])
    assert KEY in store.warnings
    store.replace_all("Service", [])  # deleted while the watch was down
    assert dict(store.warnings) == {}


def _slice(ns: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.7"]}],
            "ports": [{"port": 8080}]}


def _ingress(ns: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"rules": [{"host": "a.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def _route(res: Any) -> Any:
    return Router(res).route("GET", "a.test", "/")


def test_admitted_service_routes_to_its_endpoints() -> None:
    store = ResourceStore()
    for obj in (_ingress(), TOPOLOGY, _slice()):
        store.apply("ADDED", obj)
    decision = _route(store.snapshot())
    assert decision is not None and decision.endpoint == ("10.0.0.7", 8080)


@pytest.mark.asyncio
@pytest.mark.network
async def test_cluster_watcher_serves_a_service_stored_before_the_rule(h: Harness) -> None:
    # The fake API server holds what a real one stored before the rule existed.
    h.kube.put(_ingress("default"))
    h.kube.put(service(annotations={MODE: "Auto", HINTS: "Disabled"}, ns="default"))
    h.kube.put(_slice("default"))
    w = h.start()
    await asyncio.wait_for(w.synced.wait(), 2)
    assert names(h.last.services) == ["web"]
    assert w.stats.invalid_objects == 0
    assert ("v1/Service", "default", "web") in w.store.warnings
    decision = _route(h.last)
    assert decision is not None and decision.endpoint == ("10.0.0.7", 8080)


# -- exec credential expiry ----------------------------------------------------------------------


def _exec_client(monkeypatch: pytest.MonkeyPatch, answers: list[dict[str, Any]]) -> tuple[Any, list[int]]:
    """A lightkube client whose exec plugin answers ``answers`` in turn (no process run)."""
    from lightkube import AsyncClient, KubeConfig
    from lightkube.config import client_adapter

    ran: list[int] = []

    async def fake_output(command: Any, env: Any = None) -> bytes:
        ran.append(1)
        return json.dumps(answers[len(ran) - 1]).encode()

    monkeypatch.setattr(client_adapter, "async_check_output", fake_output)
    conf = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:9"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1", "command": "creds"}}}]}
    client = AsyncClient(config=KubeConfig.from_dict(conf))
    kube_mod._fit_exec(client)
    return client, ran


async def _send(client: Any, status: int = 200) -> str:
    """One request through the client's auth flow, answered ``status``: the token it carried
    last."""
    flow = kube_mod._http_of(client).auth.async_auth_flow(httpx.Request("GET", "http://x/"))
    request = await flow.__anext__()
    while True:
        try:
            request = await flow.asend(httpx.Response(status, request=request))
        except StopAsyncIteration:
            return str(request.headers["Authorization"])


def _answer(token: str, expiry: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"token": token}
    if expiry is not None:
        status["expirationTimestamp"] = expiry
    return {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
            "status": status}


@pytest.mark.asyncio
async def test_exec_token_renewed_at_its_expiry_before_sending(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 2030-01-01T00:15:00Z = 1893456900
    now = [1893456000.0]
    monkeypatch.setattr(kube_mod, "_exec_now", lambda: now[0], raising=False)
    client, ran = _exec_client(monkeypatch, [_answer("one", "2030-01-01T00:15:00Z"),
                                             _answer("two", "2030-01-01T00:30:00+00:00")])
    assert await _send(client) == "Bearer one"
    now[0] = 1893456900.0 - 1
    assert await _send(client) == "Bearer one" and len(ran) == 1
    now[0] = 1893456900.0  # expired: the plugin runs before the request is sent
    flow = kube_mod._http_of(client).auth.async_auth_flow(httpx.Request("GET", "http://x/"))
    first = await flow.__anext__()
    assert first.headers["Authorization"] == "Bearer two" and len(ran) == 2
    await flow.aclose()
    assert await _send(client) == "Bearer two" and len(ran) == 2


@pytest.mark.asyncio
async def test_exec_token_without_expiry_kept_until_401(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_mod, "_exec_now", lambda: 4e9, raising=False)
    client, ran = _exec_client(monkeypatch, [_answer("one"), _answer("two", "not a time")])
    assert await _send(client) == "Bearer one"
    assert await _send(client) == "Bearer one" and len(ran) == 1
    assert await _send(client, 401) == "Bearer two" and len(ran) == 2
    assert await _send(client) == "Bearer two" and len(ran) == 2  # unreadable expiry: none
