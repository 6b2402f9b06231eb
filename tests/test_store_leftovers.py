"""Leftovers of the store/table review (commit 7f6a3b3), one section per module:

1. ``_decode``: objects of other kinds (``Resources.ignored``) are the library's own deep copy.
2. ``_tls``: certificates follow RouteTable's age order (one ``_age_key``): naive timestamps
   read as UTC, an Ingress given twice counts once.
3. ``_models``: a model built by hand from plain dicts and lists is immutable (its own
   read-only maps and tuples).
4. ``_serve``: ``config_digest`` depends on the set of objects, not on the order or source.
5. ``_store``: a status-only update (only ``resourceVersion`` moves) is no rebuild.

Each test marked "defect" failed on the code before its fix (checked by reverting the fix).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import json
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
import trustme
from lightkube import KubeConfig

from ingresslib._decode import _copy_tree
from ingresslib._kube import Backoff, ClusterWatcher
from ingresslib._models import (
    Endpoint,
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    HTTPIngressPath,
    Ingress,
    IngressBackend,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    IngressTLS,
    ObjectMeta,
    Secret,
    ServiceBackendPort,
    ServicePort,
    ServiceSpec,
    freeze_map,
)
from ingresslib._resources import Resources
from ingresslib._serve import config_digest
from ingresslib._store import ResourceStore
from ingresslib._table import RouteTable, served_ingresses
from ingresslib._tls import CertificateStore

from _fake_kube import FakeKube, kubeconfig_dict

CANARY = "nginx.ingress.kubernetes.io/canary"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ingress(name: str, ns: str = "default", *, host: str = "a.example", path: str = "/x",
            service: str = "web", annotations: dict[str, str] | None = None,
            tls_secret: str | None = None, created: str | None = None,
            rv: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = dict(annotations)
    if created is not None:
        meta["creationTimestamp"] = created
    if rv is not None:
        meta["resourceVersion"] = rv
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [
        {"path": path, "pathType": "Prefix",
         "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
    if tls_secret is not None:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def service(name: str, ns: str = "default", port: int = 80,
            selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": port, "targetPort": 8080}]}
    if selector is not None:
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def ingress_class(name: str, controller: str = "example.com/a") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name}, "spec": {"controller": controller}}


def secret(name: str, data: dict[str, str], ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": "Opaque", "data": dict(data)}


# --- 1. _decode: Resources.ignored ---------------------------------------------------------------


def test_ignored_objects_do_not_change_with_the_callers_dict() -> None:
    # defect: Resources.ignored held the caller's own dict, so editing it afterwards (a client
    # object updated in place) edited the Resources.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
          "data": {"k": "1"}, "list": [{"x": 1}, [2, 3]]}
    before = copy.deepcopy(cm)
    res = Resources.from_dicts([cm])
    cm["data"]["k"] = "2"
    cm["list"][0]["x"] = 9
    cm["list"][1].append(4)
    cm["metadata"]["labels"].clear()
    cm["kind"] = "Secret"
    assert res.ignored == (before,)
    # Still plain JSON data "as read": equal to the input, and serializable as it was.
    assert json.loads(json.dumps(res.ignored[0])) == before
    assert type(res.ignored[0]["list"]) is list


def test_ignored_copy_keeps_shared_and_self_referencing_parts() -> None:
    # YAML anchors share a sub-object; a recursive anchor (`&a [*a]`) makes a cycle. The copy
    # must terminate and keep the same shape.
    shared = {"k": "v"}
    loop: list[Any] = []
    loop.append(loop)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
           "a": shared, "b": shared, "loop": loop, "when": T0, "pair": (1, {"n": 2})}
    got = Resources.from_dicts([obj]).ignored[0]
    assert got["a"] is got["b"] and got["a"] == shared and got["a"] is not shared
    assert got["loop"][0] is got["loop"] and got["loop"] is not loop
    assert got["when"] == T0 and got["pair"] == (1, {"n": 2})


def test_ignored_copy_of_a_deeply_nested_object_is_no_recursion_error() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["n"] = {}
        node = node["n"]
    node["leaf"] = [1]
    copied = _copy_tree({"apiVersion": "x/v1", "kind": "Deep", "spec": deep})
    node = copied["spec"]
    for _ in range(5000):
        node = node["n"]
    assert node == {"leaf": [1]}


def test_store_keeps_ignored_objects_isolated_without_its_own_copy() -> None:
    # The store relies on the decoder's copy now (it deep-copied again before).
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}
    store = ResourceStore()
    store.apply("ADDED", cm)
    gen = store.generation
    cm["data"]["k"] = "2"
    assert store.snapshot().ignored[0]["data"] == {"k": "1"}
    store.apply("MODIFIED", cm)
    assert store.generation == gen + 1


# --- 2. _tls: RouteTable's age order -------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_secret(name: str, cert: trustme.LeafCert) -> Secret:
    return Secret(metadata=ObjectMeta(name=name), type="kubernetes.io/tls", data={
        "tls.crt": base64.b64encode(cert.cert_chain_pems[0].bytes()).decode(),
        "tls.key": base64.b64encode(cert.private_key_pem.bytes()).decode()})


def _served_names(store: CertificateStore, host: str) -> frozenset[str]:
    """The names of the certificate chosen for ``host``."""
    ctx = store._maps[0][host]
    (cert,) = [c for c in store._cache.values() if c.ctx is ctx]
    return frozenset(cert.names)


def _tls_ingress(name: str, secret_name: str, created: datetime | None) -> Ingress:
    backend = IngressBackend(service=IngressServiceBackend("web", ServiceBackendPort(number=80)))
    return Ingress(
        metadata=ObjectMeta(name=name, creation_timestamp=created),
        spec=IngressSpec(rules=(IngressRule("a.example.test", (HTTPIngressPath(backend, "/", "Prefix"),)),),
                         tls=(IngressTLS(("a.example.test",), secret_name),)))


def test_certificates_with_naive_and_aware_timestamps(ca: trustme.CA) -> None:
    # defect: _tls had its own copy of the age key, without the naive-as-UTC rule: a naive and
    # an aware timestamp raised TypeError out of CertificateStore.update.
    exact = ca.issue_cert("a.example.test")
    wild = ca.issue_cert("*.example.test")
    newer = _tls_ingress("newer", "wild", T0)
    older = _tls_ingress("older", "exact", datetime(2023, 1, 1))  # naive: read as UTC
    res = Resources(ingresses=(newer, older),
                    secrets=(_tls_secret("exact", exact), _tls_secret("wild", wild)))
    store = CertificateStore()
    assert store.update(res) == []
    assert _served_names(store, "a.example.test") == {"a.example.test"}  # the older Ingress's
    m = RouteTable.build(res).match("a.example.test", "/")
    assert m is not None and m.ingress == "default/older"  # the same Ingress routes


def test_an_ingress_given_twice_names_the_certificate_of_its_later_definition(ca: trustme.CA) -> None:
    # defect: RouteTable routes by the later definition of an Ingress given twice, but the
    # certificate store took the earlier one's certificate.
    exact = ca.issue_cert("a.example.test")
    wild = ca.issue_cert("*.example.test")
    first, second = _tls_ingress("web", "exact", None), _tls_ingress("web", "wild", None)
    secrets = (_tls_secret("exact", exact), _tls_secret("wild", wild))
    store = CertificateStore()
    assert store.update(Resources(ingresses=(first, second), secrets=secrets)) == []
    assert _served_names(store, "a.example.test") == {"*.example.test"}
    assert store.update(Resources(ingresses=(second, first), secrets=secrets)) == []
    assert _served_names(store, "a.example.test") == {"a.example.test"}


# --- 3. _models: hand-built models are immutable -------------------------------------------------


def test_mutating_the_annotations_dict_after_building_a_table_changes_nothing() -> None:
    # defect: ObjectMeta kept the caller's dict; Match.is_canary reads the annotations at
    # lookup time, so editing the dict after the build changed routing.
    backend = IngressBackend(service=IngressServiceBackend("web", ServiceBackendPort(number=80)))
    spec = IngressSpec(rules=(IngressRule("a.example", (HTTPIngressPath(backend, "/", "Prefix"),)),))
    ann = {CANARY: "true"}
    main = Ingress(ObjectMeta(name="main"), spec)
    canary = Ingress(ObjectMeta(name="canary", annotations=ann), spec)
    table = RouteTable.build(Resources(ingresses=(main, canary)))
    m = table.match("a.example", "/")
    assert m is not None and m.canary is not None and m.canary.is_canary
    ann[CANARY] = "false"
    ann["kubernetes.io/ingress.class"] = "other"
    assert m.canary.is_canary
    assert dict(canary.metadata.annotations) == {CANARY: "true"}
    assert canary.class_name is None


@pytest.mark.parametrize("wrap", [dict, MappingProxyType], ids=["dict", "proxy-over-dict"])
def test_every_map_field_is_the_models_own_read_only_copy(wrap: Any) -> None:
    # defect: a MappingProxyType is a view: one over the caller's dict changed with it.
    raw = {"k": "1"}
    meta = ObjectMeta(name="x", annotations=wrap(raw), labels=wrap(raw))
    svc = ServiceSpec(selector=wrap(raw))
    sec = Secret(metadata=meta, data=wrap(raw), string_data=wrap(raw))
    raw["k"] = "2"
    raw["new"] = "3"
    for m in (meta.annotations, meta.labels, svc.selector, sec.data, sec.string_data):
        assert dict(m) == {"k": "1"}
        assert isinstance(m, MappingProxyType)
        with pytest.raises(TypeError):
            m["k"] = "x"  # type: ignore[index]


def test_sequence_fields_given_as_lists_become_the_models_own_tuples() -> None:
    # defect: IngressSpec(rules=[...]) kept the caller's list: appending a rule afterwards
    # changed the model (the proxy reads spec.rules of the served Ingresses lazily), and the
    # model did not compare equal to the decoded one.
    backend = IngressBackend(service=IngressServiceBackend("web", ServiceBackendPort(number=80)))
    paths = [HTTPIngressPath(backend, "/x", "Prefix")]
    rules = [IngressRule("a.example", paths)]
    hosts = ["a.example"]
    tls = [IngressTLS(hosts, "s")]
    spec = IngressSpec(rules=rules, tls=tls)
    paths.append(HTTPIngressPath(backend, "/y", "Prefix"))
    rules.append(IngressRule("b.example"))
    hosts.append("b.example")
    tls.clear()
    assert spec.rules == (IngressRule("a.example", (HTTPIngressPath(backend, "/x", "Prefix"),)),)
    assert spec.tls == (IngressTLS(("a.example",), "s"),)
    assert IngressRule("h").paths is None  # a host-only rule stays one
    decoded = Resources.from_dicts([ingress("web", host="a.example", path="/x")]).ingresses[0]
    assert dataclasses.replace(decoded.spec, rules=list(decoded.spec.rules)) == decoded.spec
    addresses = ["10.0.0.1"]
    ep = Endpoint(addresses)
    subset_addresses = [EndpointAddress("10.0.0.2")]
    subset = EndpointSubset(subset_addresses, [], [EndpointPort(80)])
    eps = Endpoints(ObjectMeta(name="web"), [subset])
    sl = EndpointSlice(ObjectMeta(name="web-1"), endpoints=[ep], ports=[EndpointPort(80)])
    svc = ServiceSpec(ports=[ServicePort(80)])
    addresses.append("10.0.0.3")
    subset_addresses.clear()
    for value in (ep.addresses, subset.addresses, subset.not_ready_addresses, subset.ports,
                  eps.subsets, sl.endpoints, sl.ports, svc.ports):
        assert type(value) is tuple
    assert ep.addresses == ("10.0.0.1",) and subset.addresses == (EndpointAddress("10.0.0.2"),)


def test_hand_built_and_decoded_models_still_compare_equal() -> None:
    decoded = Resources.from_dicts([ingress("web", annotations={"b": "2", "a": "1"})]).ingresses[0]
    by_hand = dataclasses.replace(decoded, metadata=ObjectMeta(name="web", annotations={"b": "2", "a": "1"}))
    assert by_hand == decoded
    assert ObjectMeta(name="x", annotations={}) == ObjectMeta(name="x")
    assert ObjectMeta(name="x", annotations=freeze_map({"a": "1"})) == ObjectMeta(name="x", annotations={"a": "1"})
    # replace() keeps working (and copies again: the result is immutable too).
    ann = {"a": "1"}
    replaced = dataclasses.replace(ObjectMeta(name="x"), annotations=ann)
    ann["a"] = "2"
    assert replaced.annotations["a"] == "1"


# --- 4. _serve: config_digest ---------------------------------------------------------------------


def _digest(objs: list[dict[str, Any]], config: Any = None) -> str:
    res = Resources.from_dicts(objs)
    return config_digest(res, served_ingresses(res, None, None)[0], config)


def _config() -> list[dict[str, Any]]:
    return [
        ingress("a", path="/a", annotations={"x": "1", "y": "2"}), ingress("b", path="/b"),
        service("web", selector={"app": "web", "tier": "front"}), service("api", port=81),
        ingress_class("nginx"), ingress_class("other", "example.com/b"),
        secret("s1", {"a": "eA==", "b": "eQ=="}), secret("s2", {"c": "eg=="}),
    ]


def test_digest_does_not_depend_on_the_order_of_the_objects() -> None:
    # defect: IngressClasses, Services and Secrets were hashed in input order: the same set read
    # from files and from a store snapshot (key order) gave two digests, a spurious reload.
    objs = _config()
    assert _digest(objs) == _digest(objs[::-1])


def test_digest_does_not_depend_on_the_key_order_of_maps() -> None:
    # defect: maps were hashed through repr, in insertion order; the API server sorts them.
    objs = _config()
    flipped = copy.deepcopy(objs)
    flipped[0]["metadata"]["annotations"] = {"y": "2", "x": "1"}
    flipped[2]["spec"]["selector"] = {"tier": "front", "app": "web"}
    flipped[6]["data"] = {"b": "eQ==", "a": "eA=="}
    assert _digest(objs) == _digest(flipped)


def test_digest_of_a_store_snapshot_equals_the_digest_of_the_same_files() -> None:
    # defect: a snapshot carries resourceVersion, uid and creationTimestamp, files do not.
    files = _config()
    store = ResourceStore()
    for n, obj in enumerate(files):
        live = copy.deepcopy(obj)
        live["metadata"].update(resourceVersion=str(100 + n), uid=f"uid-{n}",
                                creationTimestamp=f"2024-01-01T00:00:{n:02d}Z")
        store.apply("ADDED", live)
    snap = store.snapshot()
    from_store = config_digest(snap, served_ingresses(snap, None, None)[0])
    assert from_store == _digest(files[::-1])


def test_digest_still_sees_what_routes_depend_on() -> None:
    base = _digest(_config())
    for change in (
        lambda o: o[0]["metadata"]["annotations"].update(x="3"),   # an annotation
        lambda o: o[1]["spec"]["rules"][0].update(host="b.example"),  # a rule
        lambda o: o[3]["spec"]["ports"][0].update(port=82),       # a Service port
        lambda o: o[2]["spec"]["selector"].update(app="x"),       # a selector
        lambda o: o[5]["spec"].update(controller="example.com/c"),  # a class
        lambda o: o[7]["data"].update(c="dw=="),                  # a Secret
        lambda o: o.append(service("more")),                      # one more object
    ):
        objs = _config()
        change(objs)
        assert _digest(objs) != base
    assert _digest(_config(), config={"ssl-redirect": "false"}) != base
    # The age order of the served Ingresses decides conflicts: it is part of the digest...
    older_b = _config()
    older_b[1]["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    assert _digest(older_b) != base
    # ...but not the timestamps themselves when the order stays the same.
    same_order = _config()
    same_order[0]["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    same_order[1]["metadata"]["creationTimestamp"] = "2021-01-01T00:00:00Z"
    later = copy.deepcopy(same_order)
    later[1]["metadata"]["creationTimestamp"] = "2022-06-01T00:00:00Z"
    assert _digest(same_order) == _digest(later)


def test_an_object_given_twice_is_hashed_once_the_later_definition_winning() -> None:
    objs = _config()
    assert _digest(objs + [copy.deepcopy(objs[3])]) == _digest(objs)
    changed = service("api", port=99)
    assert _digest(objs + [changed]) == _digest([o for o in objs if o is not objs[3]] + [changed])


# --- 5. _store: status-only updates ----------------------------------------------------------------


def test_status_only_update_keeps_generation_but_the_newest_object() -> None:
    # defect: the API server bumps resourceVersion on a status update; the store counted it as
    # a change, so the watcher rebuilt the router and counted a reload.
    store = ResourceStore()
    store.apply("ADDED", service("web"))
    store.apply("ADDED", ingress("web", rv="1"))
    gen = store.generation
    status = ingress("web", rv="2")
    status["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}
    store.apply("MODIFIED", status)
    assert store.generation == gen
    assert store.snapshot().ingresses[0].metadata.resource_version == "2"
    store.apply("MODIFIED", ingress("web", rv="3", annotations={CANARY: "false"}))
    assert store.generation == gen + 1
    store.apply("MODIFIED", ingress("web", rv="4", annotations={CANARY: "false"}, path="/y"))
    assert store.generation == gen + 2
    # A Service's status (a LoadBalancer's address) likewise.
    svc = service("web")
    svc["metadata"]["resourceVersion"] = "7"
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    store.apply("MODIFIED", svc)
    svc["metadata"]["resourceVersion"] = "8"
    store.apply("MODIFIED", svc)
    assert store.generation == gen + 2
    assert store.snapshot().services[0].metadata.resource_version == "8"


async def _eventually(pred: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.network
@pytest.mark.asyncio
async def test_cluster_watch_does_not_rebuild_on_a_status_only_update() -> None:
    kube = FakeKube()
    url = await kube.start()
    snapshots: list[Resources] = []
    stop = asyncio.Event()
    watcher = ClusterWatcher(snapshots.append, config=KubeConfig.from_dict(kubeconfig_dict(url)),
                             seed=1, debounce=0.02, backoff=Backoff(initial=0.01, maximum=0.05))
    task = asyncio.create_task(watcher.run(stop))
    try:
        kube.put(service("web"))
        kube.put(ingress("web"))
        await asyncio.wait_for(watcher.synced.wait(), 5)
        await _eventually(lambda: bool(snapshots) and len(snapshots[-1].ingresses) == 1)
        n = len(snapshots)
        with_status = ingress("web")
        with_status["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}
        rv = kube.put(with_status)["metadata"]["resourceVersion"]
        # The event arrived (the store holds the new version), and no snapshot followed.
        await _eventually(lambda: watcher.store.snapshot().ingresses[0].metadata.resource_version == rv)
        await asyncio.sleep(0.2)  # ten debounce periods
        assert len(snapshots) == n
        kube.put(ingress("web", annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"}))
        await _eventually(lambda: len(snapshots) == n + 1)
        kube.put(ingress("web", path="/other", annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"}))
        await _eventually(lambda: len(snapshots) == n + 2)
        assert snapshots[-1].ingresses[0].spec.rules[0].paths[0].path == "/other"  # type: ignore[index]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await kube.stop()


def test_digest_ignores_a_status_only_update() -> None:
    # Even when a rebuild happens for another reason (an endpoint change in the same burst),
    # a status update is no reload: the digest ignores resourceVersion.
    a = [service("web"), ingress("web", rv="1")]
    b = [service("web"), ingress("web", rv="2")]
    assert _digest(a) == _digest(b)


def test_timestamps_from_a_client_and_from_text_hash_alike() -> None:
    # The official client's to_dict() gives datetime objects; files give text. Same order,
    # same digest (only the order of the served Ingresses is hashed, not the timestamps).
    a = ingress("a", created="2024-01-01T00:00:00Z")
    b = ingress("b", path="/b")
    b["metadata"]["creationTimestamp"] = T0 + timedelta(hours=1)
    text = ingress("b", path="/b", created="2024-01-01T01:00:00+00:00")
    assert _digest([a, b]) == _digest([text, a])
