"""Why 503? (W18) A backend with no endpoint says why: the Router's warnings (and
``Router.no_endpoint``), ``check``, ``serve``'s log (once per table) and ``explain``'s verdict.

The walkthrough that found it: a Service port name typo (``port: {name: htpp}``), an EndpointSlice
without the ``kubernetes.io/service-name`` label, or a slice port without a name while the Service
port is named ``http`` gave ``check``: ``ok ... 0 warning(s)``, ``serve`` (even at debug level)
nothing but the access line, and ``explain``: ``endpoint none ready (503)``. ingress-nginx warns
on every sync (controller.go: ``klog.Warningf("Service %q does not have any active Endpoint.",
svcKey)``). Files with Ingresses alone are a check of the Ingresses alone: no warning there
(``serve`` logs one INFO line)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingresslib import Router, parse_manifests
from ingresslib._cli import main
from ingresslib._endpoints import EndpointIndex
from ingresslib._models import EndpointConditions, ServicePort
from ingresslib._serve_notes import _log_fresh_notes, _notes_of, _table_notes

from _router_helpers import big_resources, endpoints_v1, ingress, resources, service, slice_
from test_review_endpoints_s18 import Feed, ingress_sets, object_specs, store_steps

_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: shop}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: site, port: {name: PORT}}}}
"""
_SERVICE = """\
---
apiVersion: v1
kind: Service
metadata: {name: site, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
"""


def _slice(labels: str, ports: str, endpoints: str) -> str:
    return f"""\
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: site-1, namespace: shop, labels: {labels}}}
addressType: IPv4
ports: {ports}
endpoints: {endpoints}
"""


_LABEL = "{kubernetes.io/service-name: site}"
_READY = "[{addresses: [10.0.0.1]}]"
_WARNING = "warning: Ingress shop/site: backend site port {port!r}: every request answers 503: "

#: The walkthrough's mistakes: (manifests, the port the Ingress names, the reason).
CASES = {
    "port name typo": (
        _INGRESS.replace("PORT", "htpp") + _SERVICE
        + _slice(_LABEL, "[{name: http, port: 8080}]", _READY), "htpp",
        "Service shop/site has no port named 'htpp' (its ports: 'http' 80)"),
    "slice without the label": (
        _INGRESS.replace("PORT", "http") + _SERVICE
        + _slice("{app: site}", "[{name: http, port: 8080}]", _READY), "http",
        "Service shop/site has no ready endpoint: no EndpointSlice labelled "
        "kubernetes.io/service-name=site (and no v1 Endpoints)"),
    "slice port without a name": (
        _INGRESS.replace("PORT", "http") + _SERVICE
        + _slice(_LABEL, "[{port: 19002}]", _READY), "http",
        "Service shop/site has no ready endpoint: EndpointSlice shop/site-1 has no TCP port "
        "named 'http' (its ports: '' 19002)"),
    "none ready": (
        _INGRESS.replace("PORT", "http") + _SERVICE
        + _slice(_LABEL, "[{name: http, port: 8080}]",
                 "[{addresses: [10.0.0.1], conditions: {ready: false}}, "
                 "{addresses: [10.0.0.2], conditions: {ready: false}}, "
                 "{addresses: [10.0.0.3], conditions: {ready: false}}]"), "http",
        "Service shop/site has no ready endpoint: 3 endpoints, none ready"),
    "slice lists no endpoint": (
        _INGRESS.replace("PORT", "http") + _SERVICE
        + _slice(_LABEL, "[{name: http, port: 8080}]", "[]"), "http",
        "Service shop/site has no ready endpoint: EndpointSlice shop/site-1 lists no endpoint"),
    "no such Service": (
        _INGRESS.replace("PORT", "http") + _SERVICE.replace("name: site,", "name: shop-site,"),
        "http", "Service shop/site not found"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_router_says_why_a_backend_has_no_endpoint(case: str) -> None:
    text, port, reason = CASES[case]
    res = parse_manifests(text)
    assert EndpointIndex(res).resolve("shop", "site", port).reason == reason
    r = Router(res)
    line = _WARNING.format(port=port) + reason
    assert [str(w) for w in r.warnings] == [line]
    assert [str(w) for w in r.no_endpoint] == [line]


def test_v1_endpoints_say_why_too() -> None:
    ing = ingress("web", [("a.test", "/", "Prefix", "web", "http")])
    svc = service("web", [ServicePort(80, "http", 8080)])
    cases = {
        "Endpoints default/web has no TCP port named 'http' (its ports: '' 8080)":
            endpoints_v1("web", ["10.0.0.1"]),
        "Endpoints default/web: 2 addresses in notReadyAddresses, none ready":
            endpoints_v1("web", [], ["10.0.0.1", "10.0.0.2"], ports=[("http", 8080)]),
    }
    for detail, eps in cases.items():
        (note,) = Router(resources(ing, svc, eps)).warnings
        assert note.message == ("backend web port 'http': every request answers 503: "
                                f"Service default/web has no ready endpoint: {detail}")


def test_slices_are_named_in_name_order_and_counted_past_three() -> None:
    ing = ingress("web", [("a.test", "/", "Prefix", "web", "http")])
    svc = service("web", [ServicePort(80, "http", 8080)])
    slices = [slice_(f"web-{i}", "web", ["10.0.0.1"], [("metrics", 9090)]) for i in (4, 2, 3, 1, 5)]
    reason = Router(resources(ing, svc, *slices)).no_endpoint[0].message.split(": ", 2)[2]
    assert reason == (
        "Service default/web has no ready endpoint: "
        + "; ".join(f"EndpointSlice default/web-{i} has no TCP port named 'http' (its ports: "
                    "'metrics' 9090)" for i in (1, 2, 3)) + "; and 2 more")


def test_one_warning_per_backend_in_table_order_and_canary_said() -> None:
    ing = ingress("web", [("a.test", "/a", "Prefix", "a", 80), ("a.test", "/b", "Prefix", "b", 80),
                          ("a.test", "/a2", "Prefix", "a", 80)])
    r = Router(resources(ing, service("a"), service("b")))
    assert [w.message.split(":")[0] for w in r.warnings] == ["backend a port 80",
                                                             "backend b port 80"]


# --- healthy tables: no warning, and no work -----------------------------------------------------


class _Counted:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import ingresslib._router as router_mod

        self.why = 0
        self.notes = 0
        why, notes = EndpointIndex._why_none, router_mod._no_endpoint_notes

        def counted_why(*a: Any) -> str:
            self.why += 1
            return why(*a)

        def counted_notes(*a: Any) -> Any:
            self.notes += 1
            return notes(*a)

        monkeypatch.setattr(EndpointIndex, "_why_none", counted_why)
        monkeypatch.setattr(router_mod, "_no_endpoint_notes", counted_notes)


def test_healthy_backends_cost_no_diagnosis(monkeypatch: pytest.MonkeyPatch) -> None:
    counted = _Counted(monkeypatch)
    res = big_resources(2000)
    r = Router(res)
    assert r.warnings == () and r.no_endpoint == ()
    # An endpoint-only update of healthy backends (the incremental path).
    moved = slice_("s7-1", "s7", ["10.9.9.9"])
    res2 = resources(*res.ingresses, *res.services,
                     *(moved if s.metadata.name == "s7-1" else s for s in res.endpoint_slices))
    r.update(res2)
    assert r.warnings == ()
    assert (counted.why, counted.notes) == (0, 0)
    # One backend broken among 2,000: diagnosed once, and the healthy ones still not at all.
    broken = slice_("s9-1", "s9", [("10.0.0.1", EndpointConditions(ready=False))])
    res3 = resources(*res.ingresses, *res.services,
                     *(broken if s.metadata.name == "s9-1" else s for s in res2.endpoint_slices))
    r.update(res3)
    assert counted.why == 1
    assert [w.message for w in r.warnings] == [
        "backend s9 port 80: every request answers 503: Service default/s9 has no ready "
        "endpoint: 1 endpoint, not ready"]
    assert r.warnings == Router(res3).warnings
    r.update(res2)  # fixed: the warning goes
    assert r.warnings == () and r.no_endpoint == ()


#: Healthy objects: every Service has ports http (80 -> 8080) and alt (81 -> 8081), and its
#: endpoints come from ready slices (split over 1-3 slices) or v1 Endpoints.
_SERVICES = ("a", "b", "c")


@st.composite
def healthy(draw: Any) -> Any:
    objs: list[object] = []
    for name in _SERVICES:
        objs.append(service(name, [ServicePort(80, "http", 8080), ServicePort(81, "alt", 8081)],
                            cluster_ip=draw(st.sampled_from(("10.96.0.1", "None")))))
        if draw(st.booleans()):
            objs.append(endpoints_v1(name, ["10.0.1.1"], ports=[("http", 8080), ("alt", 8081)]))
            continue
        for i in range(draw(st.integers(1, 3))):
            cond = draw(st.sampled_from((EndpointConditions(), EndpointConditions(ready=True))))
            extra = draw(st.lists(st.sampled_from((
                EndpointConditions(ready=False), EndpointConditions(terminating=True))),
                max_size=2))
            ips: list[Any] = [(f"10.0.{i}.1", cond)]
            ips += [(f"10.0.{i}.{k + 2}", c) for k, c in enumerate(extra)]
            objs.append(slice_(f"{name}-{i}", name, ips, [("http", 8080), ("alt", 8081)]))
    rules = [(f"h{j}.test", f"/p{j}", "Prefix", s, p) for j, (s, p) in enumerate(draw(
        st.lists(st.tuples(st.sampled_from(_SERVICES), st.sampled_from((80, 81, "http", "alt"))),
                 min_size=1, max_size=6)))]
    return resources(ingress("web", rules), *objs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(healthy(), min_size=1, max_size=4))
def test_no_warning_over_random_healthy_tables(history: list[Any]) -> None:
    r = Router(history[0])
    for res in history:
        r.update(res)  # the incremental path when only the objects differ
        assert r.warnings == () and r.no_endpoint == ()


def _empty_sides(r: Router) -> set[tuple[str, str, str]]:
    """(Ingress, service, port text) of every route side with no endpoint (a Service's)."""
    out = set()
    for m in r.table.routes:
        route = r._state.routes[m.route_id]
        for b in (route.main, route.canary):
            if b is not None and not b.eps.endpoints and b.served.service is not None:
                port = b.served.port
                out.add((b.served.ingress, b.served.service,
                         f"port {port!r}" if isinstance(port, str) else f"port {port}"))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ingress_sets, st.lists(object_specs, max_size=8), st.lists(store_steps, max_size=6))
def test_a_warning_is_said_exactly_for_backends_without_endpoint(
        ingresses: Any, start: list[Any], steps: list[Any]) -> None:
    # The generators of the incremental-update review (E18): random Services, slices (any
    # label, address type, conditions, ports) and v1 Endpoints, and random histories.
    feed = Feed(ingresses, files=False)
    for spec in start:
        feed.step(("put", spec))
    r = Router(feed.resources(), seed=1)
    for op in [("put", ("svc", "zz", 0)), *steps]:  # (the first: one more object, no route)
        feed.step(op)
        r.update(feed.resources())
        empty = _empty_sides(r)
        said = set()
        for note in r.no_endpoint:
            backend = note.message.split(":", 1)[0].split()
            said.add((note.object.removeprefix("Ingress "), backend[-3], " ".join(backend[-2:])))
        # Every note names a backend without endpoint (no false warning), and every such
        # backend is named by the note of its first Ingress (some route's side).
        assert said <= empty
        assert {(s, p) for _, s, p in empty} == {(s, p) for _, s, p in said}
        holds = bool(feed.resources().services or feed.resources().endpoint_slices
                     or feed.resources().endpoints)
        assert all((n in r.warnings) == holds for n in r.no_endpoint)


# --- check, serve's notes, explain ---------------------------------------------------------------


def test_check_prints_the_warning_when_the_files_hold_services(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, port, reason = CASES["port name typo"]
    f = tmp_path / "m.yaml"
    f.write_text(text)
    assert main(["check", "-f", str(f)]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == [_WARNING.format(port=port) + reason]
    assert "1 warning(s)" in out.out


def test_check_of_ingresses_alone_stays_quiet(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Guard: a check of Ingresses alone is a legitimate one (every backend has no endpoint).
    f = tmp_path / "m.yaml"
    f.write_text(_INGRESS.replace("PORT", "http"))
    assert main(["check", "-f", str(f)]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "0 warning(s)" in out.out


def _serve_log(router: Router, res: Any, logged: set[str],
               caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    caplog.clear()
    _log_fresh_notes(_table_notes(_notes_of(router), res), logged)
    return [(rec.levelno, rec.getMessage()) for rec in caplog.records
            if rec.name == "ingresslib.serve"]


def test_serve_logs_one_warning_per_backend_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ingresslib.serve")
    text, port, reason = CASES["none ready"]
    res = parse_manifests(text)
    r = Router(res)
    logged: set[str] = set()
    line = _WARNING.format(port=port).removeprefix("warning: ") + reason
    assert _serve_log(r, res, logged, caplog) == [(logging.WARNING, line)]
    r.update(parse_manifests(text))  # the same table again (a rollout's next event): silent
    assert _serve_log(r, r.resources, logged, caplog) == []


def test_serve_says_once_that_ingresses_alone_have_no_endpoint(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ingresslib.serve")
    res = parse_manifests(_INGRESS.replace("PORT", "http"))
    r = Router(res)
    assert r.warnings == () and len(r.no_endpoint) == 1
    logged: set[str] = set()
    assert _serve_log(r, res, logged, caplog) == [(logging.INFO, (
        "Router: no Service, EndpointSlice or Endpoints among the manifests: the 1 Service "
        "backend of the Ingresses has no endpoint (every request to it answers 503); add the "
        "Services and their EndpointSlices to the files to check them"))]
    assert _serve_log(r, res, logged, caplog) == []
    healthy_res = parse_manifests(CASES["none ready"][0].replace("ready: false", "ready: true"))
    assert _serve_log(Router(healthy_res), healthy_res, logged, caplog) == []


@pytest.mark.parametrize("case", ["slice without the label", "slice port without a name",
                                  "none ready"])
def test_explain_names_the_reason(case: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    text, _port, reason = CASES[case]
    f = tmp_path / "m.yaml"
    f.write_text(text)
    assert main(["explain", "-f", str(f), "http://shop.test/"]) == 0
    assert f"     why no endpoint: {reason}" in capsys.readouterr().out.splitlines()
    assert main(["explain", "-f", str(f), "-o", "json", "http://shop.test/"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == 503
    assert info["verdict"]["no_endpoint"] == reason == info["decision"]["why"]


def test_explain_of_a_port_typo_names_the_service_ports(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, _port, reason = CASES["port name typo"]
    f = tmp_path / "m.yaml"
    f.write_text(text)
    assert main(["explain", "-f", str(f), "http://shop.test/"]) == 0
    assert f"target port unknown ({reason}), endpoint none ready (503)" in capsys.readouterr().out


# --- serve --kubernetes: nothing false at start-up, a rollout said once per table -------------


def _k8s(name: str, ready: list[bool], port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": name, "namespace": "default"},
         "spec": {"rules": [{"host": "app.test", "http": {"paths": [
             {"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": r}}
                       for r in ready]},
    ]


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_start_up_and_rollout(tmp_path: Path) -> None:
    from test_serve_cli import _start_serve, _stop
    from test_serve_kube import _fake_cluster, _get, _until

    # The Service is put before its slice: the first table waits for every kind's first list
    # (ClusterWatcher._flusher), so the slice is in it and nothing is warned of.
    kube, cfg = await _fake_cluster(tmp_path, *_k8s("web", [True], 9))
    p, ports = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                       "--listen", "127.0.0.1:0", "--metrics-listen",
                                       "127.0.0.1:0")
    try:
        async def healthy() -> bool:
            return (await _get(ports["metrics"], "localhost", "/healthz"))[0] == 200

        await _until(healthy)
        # A rollout: the slice's endpoints go not ready, event after event, then ready again.
        for ready in ([False], [False, False], [False, False], [True]):
            kube.put(_k8s("web", ready, 9)[2])
            await asyncio.sleep(0.6)  # past the watcher's debounce: one table per event
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
    lines = err.splitlines()
    updates = [i for i, line in enumerate(lines) if "cluster update:" in line]
    warned = [i for i, line in enumerate(lines) if "every request answers 503" in line]
    assert updates, err
    # Nothing false at start-up: no warning before the second table.
    assert all(i > updates[0] for i in warned), err
    # Said for the not-ready tables, at most once per table (the two-endpoint one twice in a
    # row: once), and not for the healthy ones.
    assert [lines[i].split("answers 503: ")[1] for i in warned] == [
        "Service default/web has no ready endpoint: 1 endpoint, not ready",
        "Service default/web has no ready endpoint: 2 endpoints, none ready"], err
    assert len(warned) <= len(updates) - 1
