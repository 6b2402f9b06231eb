"""A host's paths no rule covers, served by another Ingress's ``defaultBackend`` (SEMANTICS §4.5),
take the redirects of the host's server ``location /`` (session 14, W1).

ingress-nginx serves such a path from the server's own ``location /``, built from the host's
oldest Ingress (kubernetes/ingress-nginx internal/ingress/controller/controller.go
``createServers``: "loc := &ingress.Location{Path: rootLocation, ..., IsDefBackend: true,
Backend: un, Ingress: ing}; locationApplyAnnotations(loc, anns)"; ``locationApplyAnnotations``:
"loc.Redirect = anns.Redirect", "loc.Rewrite = anns.Rewrite"). So the host owner's
ssl-redirect / force-ssl-redirect / permanent- / temporal-redirect / rewrite-target URL answer
those paths, and the default backend's Ingress's do not: the same answers as for the host
without any default backend (``_unrouted_redirect``). The proxy core and IngressASGI agree.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._router import Router

from _proxy_harness import ProxyPair, location, status_of
from test_asgi_conformance import assert_same_answer, proxy_answer, wire
from test_trace_s14 import WEB  # the Service web and its endpoint

P = "nginx.ingress.kubernetes.io/"



def _ann(annotations: dict[str, str]) -> str:
    return ", ".join(f"{k!r}: {v!r}" for k, v in annotations.items())


def catch_all(annotations: dict[str, str] | None = None) -> str:
    """The cluster's catch-all Ingress: older, no rules, a defaultBackend."""
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: catch-all, namespace: default, creationTimestamp: '2023-01-01T00:00:00Z',
           annotations: {{{_ann(annotations or {})}}}}}
spec:
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
"""


def owner(annotations: dict[str, str] | None = None) -> str:
    """admin.test's only Ingress: one rule, /admin; no defaultBackend of its own."""
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: admin, namespace: default, creationTimestamp: '2024-01-01T00:00:00Z',
           annotations: {{{_ann(annotations or {})}}}}}
spec:
  rules:
  - host: admin.test
    http:
      paths:
      - path: /admin
        pathType: Prefix
        backend: {{service: {{name: web, port: {{number: 80}}}}}}
"""


def manifests(owner_ann: dict[str, str], catch_ann: dict[str, str] | None = None,
              with_default: bool = True) -> str:
    return (catch_all(catch_ann) if with_default else "") + owner(owner_ann) + WEB


TLS = {"admin.test"}

#: The host owner's redirect annotations, each with a request it answers on http.
OWNER_REDIRECTS: list[tuple[dict[str, str], str, int, bytes]] = [
    ({P + "force-ssl-redirect": "true"}, "/x/?q=1", 308, b"https://admin.test/x/?q=1"),
    ({P + "force-ssl-redirect": "true"}, "/x/", 308, b"https://admin.test/x"),
    ({P + "force-ssl-redirect": "true", P + "preserve-trailing-slash": "true"}, "/x/", 308,
     b"https://admin.test/x/"),
    ({P + "permanent-redirect": "https://new.test/"}, "/x", 301, b"https://new.test/"),
    ({P + "permanent-redirect": "https://new.test/", P + "permanent-redirect-code": "308"},
     "/x", 308, b"https://new.test/"),
    ({P + "temporal-redirect": "https://tmp.test/"}, "/x?a=b", 302, b"https://tmp.test/"),
    ({P + "rewrite-target": "https://new.test/"}, "/x?a=b", 302, b"https://new.test/?a=b"),
]


@pytest.mark.parametrize("ann,path,status,location", OWNER_REDIRECTS)
def test_defect_default_backend_takes_the_host_owners_redirect(
        ann: dict[str, str], path: str, status: int, location: bytes) -> None:
    # Before: the catch-all's (empty) annotations applied: proxied to the default backend.
    head = f"GET {path} HTTP/1.1\r\nHost: admin.test"
    r = proxy_answer(wire(head), manifests=manifests(ann), tls_hosts=set())
    assert (r.status, r.header(b"location")) == (status, location)
    # The same answer as for the host without any default backend (``_unrouted_redirect``).
    bare = proxy_answer(wire(head), manifests=manifests(ann, with_default=False),
                        tls_hosts=set())
    assert (bare.status, bare.header(b"location")) == (status, location)
    asyncio.run(assert_same_answer(head, manifests=manifests(ann), tls_hosts=set()))


def test_defect_owners_ssl_redirect_off_is_not_overridden_by_the_default_backends() -> None:
    # admin.test has TLS; its owner turns ssl-redirect off, the catch-all leaves the default
    # (on). Before: 308 to https (the catch-all's options); ingress-nginx's location / has the
    # owner's "ssl-redirect: false": served over http.
    m = manifests({P + "ssl-redirect": "false"})
    head = "GET /x HTTP/1.1\r\nHost: admin.test"
    r = proxy_answer(wire(head), manifests=m, tls_hosts=TLS)
    assert r.status is None and r.upstream is not None
    asyncio.run(assert_same_answer(head, manifests=m, tls_hosts=TLS))


@pytest.mark.parametrize("catch_ann,path", [
    ({P + "permanent-redirect": "https://elsewhere.test/"}, "/x"),
    ({P + "force-ssl-redirect": "true"}, "/x"),
    ({P + "rewrite-target": "https://elsewhere.test/"}, "/x"),
    ({P + "app-root": "/app"}, "/"),
])
def test_defect_default_backends_own_redirects_do_not_answer_another_host(
        catch_ann: dict[str, str], path: str) -> None:
    # The catch-all's redirect annotations belong to its own locations, not to admin.test's
    # location / (which has the owner's: none). Before: admin.test's unruled paths answered
    # the catch-all's redirect.
    m = manifests({}, catch_ann)
    head = f"GET {path} HTTP/1.1\r\nHost: admin.test"
    r = proxy_answer(wire(head), manifests=m, tls_hosts=set())
    assert r.status is None and r.upstream is not None
    asyncio.run(assert_same_answer(head, manifests=m, tls_hosts=set()))


def test_guard_owner_app_root_and_ruled_paths_unchanged() -> None:
    # The owner's app-root answers "/" (server level, as before); a ruled path keeps its own
    # options; a host no Ingress names (the catch-all server) takes none of the catch-all's
    # redirects (session 15, tests/test_catchall_s15.py: ingress-nginx's "TODO: Redirect and
    # rewrite can affect the catch all behavior, skip for now").
    m = manifests({P + "app-root": "/app", P + "force-ssl-redirect": "true"},
                  {P + "permanent-redirect": "https://elsewhere.test/"})
    r = proxy_answer(wire("GET / HTTP/1.1\r\nHost: admin.test"), manifests=m, tls_hosts=set())
    assert (r.status, r.header(b"location")) == (302, b"http://admin.test/app")
    r = proxy_answer(wire("GET /admin/x HTTP/1.1\r\nHost: admin.test"), manifests=m,
                     tls_hosts=set())
    assert (r.status, r.header(b"location")) == (308, b"https://admin.test/admin/x")
    r = proxy_answer(wire("GET /x HTTP/1.1\r\nHost: other.test"), manifests=m, tls_hosts=set())
    assert r.status is None and r.upstream is not None
    for head in ("GET / HTTP/1.1\r\nHost: admin.test", "GET /admin/x HTTP/1.1\r\nHost: admin.test",
                 "GET /x HTTP/1.1\r\nHost: other.test"):
        asyncio.run(assert_same_answer(head, manifests=m, tls_hosts=set()))


def test_guard_owner_denial_comes_before_its_redirect_and_access_still_applies() -> None:
    # A denied owner (an access annotation it cannot apply): 503 before any redirect, as the
    # unrouted location / answers. An owner allowlist still applies (fail closed).
    m = manifests({P + "configuration-snippet": "deny all;", P + "force-ssl-redirect": "true"})
    head = "GET /x HTTP/1.1\r\nHost: admin.test"
    assert proxy_answer(wire(head), manifests=m, tls_hosts=set()).status == 503
    asyncio.run(assert_same_answer(head, manifests=m, tls_hosts=set()))
    m = manifests({P + "whitelist-source-range": "10.0.0.0/8"})
    assert proxy_answer(wire(head), manifests=m, tls_hosts=set(),
                        peer="192.0.2.1").status == 403


def test_defect_owners_redirect_comes_before_its_access_phase() -> None:
    # The location's redirect is a rewrite-phase directive, before nginx's access phase (as
    # for a routed request, and for the same host without a default backend). Before: 403.
    head = "GET /x HTTP/1.1\r\nHost: admin.test"
    for with_default in (True, False):
        m = manifests({P + "whitelist-source-range": "10.0.0.0/8",
                       P + "temporal-redirect": "https://tmp.test/"}, with_default=with_default)
        r = proxy_answer(wire(head), manifests=m, tls_hosts=set(), peer="192.0.2.1")
        assert (r.status, r.header(b"location")) == (302, b"https://tmp.test/")
        asyncio.run(assert_same_answer(head, manifests=m, tls_hosts=set()))


def test_defect_explain_shows_the_owners_redirect(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # ``ingresslib explain`` runs the proxy core (_explain_verdict.py): the same answer.
    files = tmp_path / "m.yaml"
    files.write_text(manifests({P + "force-ssl-redirect": "true"},
                               {P + "permanent-redirect": "https://elsewhere.test/"}))
    assert main(["explain", "-f", str(files), "-o", "json", "http://admin.test/x"]) == 0
    verdict = json.loads(capsys.readouterr().out)["verdict"]
    assert (verdict["status"], verdict["location"]) == (308, "https://admin.test/x")
    # The catch-all server: none of the catch-all's redirects (session 15).
    assert main(["explain", "-f", str(files), "-o", "json", "http://other.test/x"]) == 0
    verdict = json.loads(capsys.readouterr().out)["verdict"]
    assert verdict["proxied"] is True and "location" not in verdict


def test_defect_one_keep_alive_connection_through_the_harness() -> None:
    # The proxy core driven by tests/_proxy_harness.py over a real Router: on one connection,
    # the host's unruled path answers the owner's force-ssl-redirect, its rule redirects too,
    # and another host (the catch-all server) reaches the default backend (no redirect of its
    # own there). Before: the first request was proxied.
    router = Router(parse_manifests(manifests({P + "force-ssl-redirect": "true"})), seed=1)
    pair = ProxyPair(router=router)
    out = pair.send(b"GET /x HTTP/1.1\r\nHost: admin.test\r\n\r\n")
    assert status_of(out) == 308 and location(out) == b"https://admin.test/x"
    out = pair.send(b"GET /admin HTTP/1.1\r\nHost: admin.test\r\n\r\n")
    assert status_of(out) == 308 and location(out) == b"https://admin.test/admin"
    assert not pair.opens
    out = pair.send(b"GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n")
    assert len(pair.opens) == 1 and pair.opens[0].endpoint == ("10.0.0.1", 8080)
