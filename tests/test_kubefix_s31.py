"""Session 31, helper ``kubefix``: a cluster swap that fails under ``serve --kubernetes`` logs
one traceback (not serve's and the watcher's both), its retries none; an ExternalName Service
port whose ``targetPort`` is a name gets the port ingress-nginx gives it (no endpoint where
ingress-nginx's ``TargetPort.IntValue()`` gives port 0)."""

from __future__ import annotations

import asyncio
import logging
import pytest

from ingresslib import Router, parse_manifests
from ingresslib._endpoints import EndpointIndex
from ingresslib._resources import Resources
from ingresslib._tcp_services import TCPServiceEntry, resolve_tcp_services

# --- 1. one traceback for a failed cluster swap ---------------------------------------------


def test_a_failing_swap_under_serve_logs_one_traceback_and_its_retries_none(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """serve's on_snapshot logged the failure with its traceback and re-raised it, and
    ClusterWatcher._deliver logged it again with its traceback: two for one failure. Now the
    watcher's (public API, documented) carries it; serve's line says what serve does."""
    from ingresslib import _serve, _serve_reload
    from ingresslib._kube import ClusterWatcher

    monkeypatch.setattr(_serve_reload, "RETRY_FIRST", 60.0)   # (the test delivers again itself)
    rounds: list[list[logging.LogRecord]] = []
    watchers: list[ClusterWatcher] = []

    async def run(self: ClusterWatcher, stop: asyncio.Event) -> None:
        watchers.append(self)
        for _ in range(3):   # the first delivery, then two retries failing the same way
            caplog.clear()
            self._delivered_generation = -1   # (SnapshotRetry's way: deliver again)
            await self._deliver()
            rounds.append(list(caplog.records))
        stop.set()

    def update(self: Router, res: Resources) -> None:
        raise MemoryError("no room for the table")

    monkeypatch.setattr(ClusterWatcher, "run", run)
    monkeypatch.setattr(Router, "update", update)
    server = type("S", (), {"router": Router(Resources()), "cert_store": None})()
    args = type("A", (), {"ingress_class": None, "controller": None, "namespace": None,
                          "kubeconfig": None, "no_auth_secrets": True})()
    outcomes: list[bool] = []

    async def main() -> None:
        stop, synced = asyncio.Event(), asyncio.Event()
        await asyncio.wait_for(_serve._watch(
            args, server, None, None, stop, synced, kube_client=object(),
            on_reload=lambda ok, *a: outcomes.append(ok)), 5)

    with caplog.at_level(logging.DEBUG, logger="ingresslib"):
        asyncio.run(main())
    assert outcomes == [False, False, False]
    assert watchers[0].stats.callback_errors == 3   # every failure still counted
    first, *retries = rounds
    full = [r for r in first if r.exc_info is not None]
    assert len(full) == 1, [r.getMessage() for r in full]
    assert isinstance(full[0].exc_info[1], MemoryError)   # type: ignore[index]
    # Every documented line stays: serve says what it does (ERROR, the retry's delay), the
    # watcher that on_snapshot failed (its traceback); a retry says it again in one line.
    said = [(r.levelno, r.getMessage()) for r in first if r.levelno >= logging.WARNING]
    assert (logging.ERROR, "cluster update failed; keeping the last good configuration; "
            "trying again in 60 s") in said, said
    assert full[0].getMessage() == "on_snapshot failed; keeping the watch going"
    for records in retries:
        assert [r for r in records if r.exc_info is not None] == []
        assert any("on_snapshot failed again: MemoryError('no room for the table')"
                   in r.getMessage() for r in records), [r.getMessage() for r in records]


# --- 2. ExternalName Services with a named targetPort -----------------------------------------

_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: ext, namespace: default}}
spec:
  type: ExternalName
  externalName: backend.example.com
  ports:
  - {{name: http, port: 80, targetPort: {target}}}
  - {{name: dflt, port: 81}}
"""


def _index(target: str) -> EndpointIndex:
    return EndpointIndex(parse_manifests(_SERVICE.format(target=target)))


def _http(target: str, port: int | str) -> tuple[tuple[str, int], ...]:
    return _index(target).resolve("default", "ext", port).endpoints


def test_http_backend_by_number_on_a_named_target_port_gets_no_endpoint() -> None:
    # externalNamePorts, by number: "tp := svcPort.TargetPort; if tp.IntValue() == 0 { tp =
    # intstr.FromInt(port) }" and then "return &apiv1.ServicePort{... TargetPort:
    # svcPort.TargetPort}" (not tp): getEndpointsFromSlices' "port.TargetPort.IntValue()" of a
    # name is 0, the upstream "backend.example.com:0", which no connection reaches. Before:
    # ingresslib used the Service port (80), serving what ingress-nginx never serves.
    found = _index("web").resolve("default", "ext", 80)
    assert found.endpoints == () and found.port is None
    assert found.reason is not None and "targetPort 'web'" in found.reason \
        and "port 0" in found.reason, found.reason


def test_http_backend_by_name_on_a_named_target_port_gets_the_service_port() -> None:
    # externalNamePorts, by name: "if tp.IntValue() == 0 { tp = intstr.FromInt(int(
    # svcPort.Port)) }" and that tp is returned: the Service port.
    assert _http("web", "http") == (("backend.example.com", 80),)


def test_http_backend_on_a_numeric_or_defaulted_target_port() -> None:
    # A number: that number, by number or by name. None given (a file; the API server
    # defaults targetPort to port): the Service port.
    assert _http("8080", 80) == _http("8080", "http") == (("backend.example.com", 8080),)
    assert _http("8080", 81) == _http("8080", "dflt") == (("backend.example.com", 81),)


@pytest.mark.parametrize("port", [80, "http"])
def test_tcp_services_entry_on_a_named_target_port_is_not_listened_on(port: int | str) -> None:
    # getStreamServices hands the Service's own port to getEndpointsFromSlices ("endps =
    # getEndpointsFromSlices(svc, &sp, proto, ...)"), by number and by name: a named
    # targetPort is port 0 there too (no externalNamePorts fix-up). Before: port 80.
    res = parse_manifests(_SERVICE.format(target="web"))
    found = EndpointIndex(res).resolve("default", "ext", port, stream=True)
    assert found.endpoints == () and found.reason is not None and "port 0" in found.reason
    entry = TCPServiceEntry(port=9000, namespace="default", service="ext", service_port=port)
    targets, warnings = resolve_tcp_services([entry], res)
    assert targets == [] and len(warnings) == 1 and "not listened on" in warnings[0], warnings


def test_tcp_services_entry_on_a_numeric_target_port_gets_that_port() -> None:
    res = parse_manifests(_SERVICE.format(target="6432"))
    index = EndpointIndex(res)
    assert index.resolve("default", "ext", 80, stream=True).endpoints == (
        ("backend.example.com", 6432),)
    assert index.resolve("default", "ext", "dflt", stream=True).endpoints == (
        ("backend.example.com", 81),)


def test_check_warns_of_the_backend_on_a_named_target_port() -> None:
    # The Router's no-endpoint warning (``ingresslib check``) names the reason.
    text = _SERVICE.format(target="web") + """\
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: default}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ext, port: {number: 80}}}}
"""
    router = Router(parse_manifests(text))
    said = [w.message for w in router.warnings if "ext port 80" in w.message]
    assert len(said) == 1 and "targetPort 'web'" in said[0], [w.message for w in
                                                              router.warnings]


def test_udp_services_entry_on_a_named_target_port_gets_no_endpoint() -> None:
    # getStreamServices(..., apiv1.ProtocolUDP) reads the Service's port as TCP's does.
    res = parse_manifests("""\
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  type: ExternalName
  externalName: dns.example.com
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: dns-udp}
""")
    found = EndpointIndex(res).resolve("default", "dns", 53, protocol="UDP", stream=True)
    assert found.endpoints == () and found.reason is not None and "port 0" in found.reason
