"""A default backend answering the catch-all server takes no redirect or rewrite annotation
(session 15, C15).

The catch-all case: no Ingress rule names the request's host, or the request has no Host, and
no host-less rule covers its path, so a ``defaultBackend`` answers (SEMANTICS §4.5 picks
which). ingress-nginx serves it from the ``location /`` of its catch-all server ``_``, which an
Ingress with a backend and no rules configures without its redirect and rewrite
(kubernetes/ingress-nginx internal/ingress/controller/controller.go ``createServers``: "//
TODO: Redirect and rewrite can affect the catch all behavior, skip for now / originalRedirect
:= defLoc.Redirect / originalRewrite := defLoc.Rewrite / locationApplyAnnotations(defLoc,
anns) / defLoc.Redirect = originalRedirect / defLoc.Rewrite = originalRewrite"). Those are
``redirect.Config`` (temporal-/permanent-redirect and their codes, from-to-www-redirect) and
``rewrite.Config`` (rewrite-target, ssl-redirect, force-ssl-redirect, preserve-trailing-slash,
app-root, use-regex), left at their zero values: no redirect of any kind, no rewrite of the
path (so no X-Forwarded-Prefix either). Access control and the proxying options (body size,
backend-protocol...) still apply. A host-less rule's own location keeps its annotations, and
a *named* host's paths no rule covers keep the host owner's redirects (session 14).

Before: the default backend Ingress's annotations applied in full there. The proxy core, the
harness's keep-alive connection, IngressASGI and ``ingresslib explain`` are checked.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings

from _proxy_harness import FakeMatch, FakeRouter, ProxyPair, Route, location, status_of
from test_asgi_conformance import Seen, asgi_call, proxy_answer, wire
# The Service web and its endpoint, the catch-all Ingress and admin.test's owner Ingress are
# session 14's (its catch-all server was left as it was; this file changes it).
from test_default_backend_owner_s14 import _ann, catch_all
from test_default_backend_owner_s14 import owner as admin
from test_trace_s14 import WEB

P = "nginx.ingress.kubernetes.io/"

def hostless(annotations: dict[str, str] | None = None) -> str:
    """An Ingress with a host-less rule, /api, and a defaultBackend: SEMANTICS §4.5 serves
    the host-less group's other paths from that defaultBackend."""
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: hl, namespace: default, creationTimestamp: '2023-06-01T00:00:00Z',
           annotations: {{{_ann(annotations or {})}}}}}
spec:
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
  rules:
  - http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""


def request_line(upstream: bytes | None) -> bytes:
    assert upstream is not None, "answered locally, not proxied"
    return upstream.split(b"\r\n", 1)[0]


def asgi(head: str, manifests: str, **options: Any) -> Seen:
    return asyncio.run(asgi_call(head, manifests=manifests, **options))


#: The default backend Ingress's redirect / rewrite annotations, a request path, and what the
#: old code answered (status, Location) for a request for other.test, a host no rule names.
CATCH_ALL_REDIRECTS: list[tuple[dict[str, str], str, int, bytes]] = [
    ({P + "permanent-redirect": "https://e.test/"}, "/x", 301, b"https://e.test/"),
    ({P + "permanent-redirect": "https://e.test/", P + "permanent-redirect-code": "308"},
     "/x", 308, b"https://e.test/"),
    ({P + "temporal-redirect": "https://t.test/"}, "/x?a=b", 302, b"https://t.test/"),
    ({P + "temporal-redirect": "https://t.test/", P + "temporal-redirect-code": "307"},
     "/x", 307, b"https://t.test/"),
    ({P + "rewrite-target": "https://e.test/"}, "/x?a=b", 302, b"https://e.test/?a=b"),
    ({P + "force-ssl-redirect": "true"}, "/x/", 308, b"https://other.test/x"),
    ({P + "force-ssl-redirect": "true", P + "preserve-trailing-slash": "true"}, "/x/", 308,
     b"https://other.test/x/"),
    ({P + "app-root": "/app"}, "/", 302, b"http://other.test/app"),
]
IDS = ["permanent", "permanent-308", "temporal", "temporal-307", "rewrite-url", "force-ssl",
       "force-ssl-keep-slash", "app-root"]


@pytest.mark.parametrize("ann,path,old_status,old_location", CATCH_ALL_REDIRECTS, ids=IDS)
def test_defect_catch_all_default_backend_takes_no_redirect(
        ann: dict[str, str], path: str, old_status: int, old_location: bytes) -> None:
    # Before: (old_status, old_location). ingress-nginx's ``_`` location / has none of them.
    m = catch_all(ann) + WEB
    head = f"GET {path} HTTP/1.1\r\nHost: other.test"
    r = proxy_answer(wire(head), manifests=m, tls_hosts=set())
    assert (r.status, r.header(b"location")) == (None, None), (old_status, old_location)
    assert request_line(r.upstream) == f"GET {path} HTTP/1.1".encode()  # not rewritten


#: (annotations, path, Host or None) for IngressASGI: every case with a Host; without one
#: those that redirected before (an ssl-redirect needs a host to name: it never did).
ASGI_CASES = [pytest.param(ann, path, "other.test", id=f"host-{i}")
              for (ann, path, _, _), i in zip(CATCH_ALL_REDIRECTS, IDS)] + [
    pytest.param(ann, path, None, id=f"no-host-{i}")
    for (ann, path, _, _), i in zip(CATCH_ALL_REDIRECTS, IDS) if "force-ssl" not in i]


@pytest.mark.parametrize("ann,path,host", ASGI_CASES)
def test_defect_asgi_catch_all_default_backend_takes_no_redirect(
        ann: dict[str, str], path: str, host: str | None) -> None:
    # IngressASGI (RouteOptionsSource.options_for, as the proxy): the app runs on the path
    # as received. Before: the redirect was answered.
    m = catch_all(ann) + WEB
    head = f"GET {path} HTTP/1.1\r\nHost: {host}" if host else f"GET {path} HTTP/1.0"
    seen = asgi(head, m, tls_hosts=set())
    assert seen.app_ran and seen.status == 200, seen.sent
    assert seen.scopes[0]["path"] == path.partition("?")[0]


@pytest.mark.parametrize("ann,path", [
    ({P + "permanent-redirect": "https://e.test/"}, "/x"),
    ({P + "temporal-redirect": "https://t.test/"}, "/x"),
    ({P + "rewrite-target": "https://e.test/"}, "/x"),
    ({P + "app-root": "/app"}, "/"),  # before: the relative Location /app
], ids=["permanent", "temporal", "rewrite-url", "app-root"])
def test_defect_request_without_host_takes_no_redirect(ann: dict[str, str], path: str) -> None:
    # HTTP/1.0 without Host: the host-less group, the catch-all server. Before: redirected.
    m = catch_all(ann) + WEB
    head = f"GET {path} HTTP/1.0"
    r = proxy_answer(wire(head), manifests=m, tls_hosts=set())
    assert r.status is None and request_line(r.upstream) == f"GET {path} HTTP/1.1".encode()


def test_defect_ssl_redirect_of_a_tls_host_no_rule_names() -> None:
    # other.test has a certificate (a wildcard one, say) but no rule: the catch-all's
    # location / has ssl-redirect off (rewrite.Config's zero value), whatever the annotation
    # or the ConfigMap default (on). Before: 308 to https.
    for ann in ({P + "ssl-redirect": "true"}, {}):
        m = catch_all(ann) + WEB
        head = "GET /x HTTP/1.1\r\nHost: other.test"
        r = proxy_answer(wire(head), manifests=m, tls_hosts={"other.test"})
        assert r.status is None and r.upstream is not None
        assert asgi(head, m, tls_hosts={"other.test"}).app_ran


def test_defect_configmap_force_ssl_redirect_does_not_reach_the_catch_all() -> None:
    # ConfigMap force-ssl-redirect: true. lua_ingress.lua reads the location's
    # Rewrite.ForceSSLRedirect, false in the catch-all's location /; a host no Ingress names
    # without a default backend gets no redirect either (``_unrouted_options``). Before: 308.
    settings = ProxySettings(force_ssl_redirect=True)
    m = catch_all() + WEB
    head = "GET /x HTTP/1.1\r\nHost: other.test"
    r = proxy_answer(wire(head), manifests=m, tls_hosts=set(), settings=settings)
    assert r.status is None and r.upstream is not None
    assert asgi(head, m, tls_hosts=set(), settings=settings).app_ran
    # A rule of a named host still takes the ConfigMap's value.
    m = catch_all() + admin() + WEB
    r = proxy_answer(wire("GET /admin HTTP/1.1\r\nHost: admin.test"), manifests=m,
                     tls_hosts=set(), settings=settings)
    assert (r.status, r.header(b"location")) == (308, b"https://admin.test/admin")


def test_defect_path_rewrite_target_is_not_applied_on_the_catch_all() -> None:
    # rewrite-target is rewrite.Config too: no rewrite, and so no X-Forwarded-Prefix (sent
    # only with a rewrite). Before: "GET /new?q=1" with "x-forwarded-prefix: /pre".
    m = catch_all({P + "rewrite-target": "/new", P + "x-forwarded-prefix": "/pre"}) + WEB
    head = "GET /x?q=1 HTTP/1.1\r\nHost: other.test"
    r = proxy_answer(wire(head), manifests=m, tls_hosts=set())
    assert request_line(r.upstream) == b"GET /x?q=1 HTTP/1.1"
    assert b"x-forwarded-prefix" not in r.upstream.lower()  # type: ignore[union-attr]


def test_defect_asgi_sends_no_forwarded_prefix_on_the_catch_all() -> None:
    # IngressASGI sends X-Forwarded-Prefix as the proxy does, only with a rewrite-target.
    # Before: the app saw "x-forwarded-prefix: /pre".
    m = catch_all({P + "rewrite-target": "/new", P + "x-forwarded-prefix": "/pre"}) + WEB
    seen = asgi("GET /x?q=1 HTTP/1.1\r\nHost: other.test", m, tls_hosts=set())
    scope = seen.scopes[0]
    assert scope["path"] == "/x"
    assert all(n != b"x-forwarded-prefix" for n, _ in scope["headers"])


def test_defect_hostless_rules_default_backend_takes_no_redirect() -> None:
    # The host-less group's default backend (the Ingress with the host-less rule): in
    # ingress-nginx its rules find the ``_`` server "already configured", so the catch-all
    # location / never has its annotations. Its own rule's location keeps them.
    m = hostless({P + "permanent-redirect": "https://e.test/"}) + WEB
    for head in ("GET /x HTTP/1.1\r\nHost: other.test", "GET /x HTTP/1.0"):
        r = proxy_answer(wire(head), manifests=m, tls_hosts=set())
        assert r.status is None and request_line(r.upstream) == b"GET /x HTTP/1.1"  # before: 301
        assert asgi(head, m, tls_hosts=set()).app_ran
    r = proxy_answer(wire("GET /api/v HTTP/1.1\r\nHost: other.test"), manifests=m,
                     tls_hosts=set())
    assert (r.status, r.header(b"location")) == (301, b"https://e.test/")  # the rule's own
    m = hostless({P + "app-root": "/app"}) + WEB
    r = proxy_answer(wire("GET / HTTP/1.1\r\nHost: other.test"), manifests=m, tls_hosts=set())
    assert r.status is None and request_line(r.upstream) == b"GET / HTTP/1.1"  # before: 302


def test_defect_access_control_still_applies_after_the_dropped_redirect() -> None:
    # The allowlist is the catch-all's (locationApplyAnnotations: "loc.Whitelist =
    # anns.Whitelist"), its redirect is not: a client outside gets 403. Before: 301 (the
    # redirect, a rewrite-phase answer, came first).
    m = catch_all({P + "whitelist-source-range": "10.0.0.0/8",
                   P + "permanent-redirect": "https://e.test/"}) + WEB
    head = "GET /x HTTP/1.1\r\nHost: other.test"
    assert proxy_answer(wire(head), manifests=m, tls_hosts=set(), peer="192.0.2.1").status == 403
    r = proxy_answer(wire(head), manifests=m, tls_hosts=set(), peer="10.1.2.3")
    assert r.status is None and r.upstream is not None
    # A denied location (an access annotation ingresslib cannot enforce) stays 503.
    m = catch_all({P + "configuration-snippet": "deny all;",
                   P + "permanent-redirect": "https://e.test/"}) + WEB
    assert proxy_answer(wire(head), manifests=m, tls_hosts=set()).status == 503


def test_defect_asgi_access_control_after_the_dropped_redirect() -> None:
    # IngressASGI: the same 403 (before: 301), and the app for a client inside.
    m = catch_all({P + "whitelist-source-range": "10.0.0.0/8",
                   P + "permanent-redirect": "https://e.test/"}) + WEB
    head = "GET /x HTTP/1.1\r\nHost: other.test"
    seen = asgi(head, m, tls_hosts=set(), client=("192.0.2.1", 40000))
    assert not seen.app_ran and seen.status == 403
    assert asgi(head, m, tls_hosts=set(), client=("10.1.2.3", 40000)).app_ran


def test_defect_proxying_options_stay_the_default_backend_ingresss() -> None:
    # backend-protocol and proxy-body-size are not Redirect/Rewrite: they apply. Before: the
    # redirect answered first, nothing was proxied.
    router = Router(parse_manifests(catch_all({P + "backend-protocol": "HTTPS",
                                               P + "temporal-redirect": "https://t.test/"})
                                    + WEB), seed=1)
    pair = ProxyPair(router=router)
    pair.send(b"GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n")
    assert len(pair.opens) == 1 and pair.opens[0].tls
    m = catch_all({P + "proxy-body-size": "10", P + "rewrite-target": "https://e.test/"}) + WEB
    r = proxy_answer(wire("POST /x HTTP/1.1\r\nHost: other.test\r\nContent-Length: 20",
                          b"x" * 20), manifests=m, tls_hosts=set())
    assert r.status == 413


def test_defect_one_keep_alive_connection_through_the_harness() -> None:
    # On one connection: admin.test's unruled path takes its owner's force-ssl-redirect
    # (session 14, unchanged), its rule too; other.test and a second request for it reach
    # the default backend unrewritten. Before: other.test got the catch-all's 301.
    m = (catch_all({P + "permanent-redirect": "https://e.test/", P + "rewrite-target": "/r"})
         + admin({P + "force-ssl-redirect": "true"}) + WEB)
    pair = ProxyPair(router=Router(parse_manifests(m), seed=1))
    out = pair.send(b"GET /x HTTP/1.1\r\nHost: admin.test\r\n\r\n")
    assert status_of(out) == 308 and location(out) == b"https://admin.test/x"
    out = pair.send(b"GET /admin HTTP/1.1\r\nHost: admin.test\r\n\r\n")
    assert status_of(out) == 308 and location(out) == b"https://admin.test/admin"
    assert not pair.opens
    for target in (b"/x?q=1", b"/y"):
        out = pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: other.test\r\n\r\n")
        assert status_of(out) == 200 and out.endswith(b"ok " + target)  # the target as sent
    assert [o.endpoint for o in pair.opens] == [("10.0.0.1", 8080)] * 2


def test_defect_custom_router_default_backend_without_host() -> None:
    # A custom router (no table) whose Match says "default backend, no host" is the catch-all
    # too: the Match alone decides, no table is needed. Before: 301.
    router = FakeRouter([Route()])
    router.routes[0].match = FakeMatch("web", 80, "default", "default/web", None, None, None,
                                       True, {P + "permanent-redirect": "https://e.test/"})
    out = ProxyPair(router=router).send(b"GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"ok /x")


def test_guard_named_host_default_backend_keeps_the_owners_redirects() -> None:
    # Session 14: a named host's unruled path takes the host owner's redirects, not the
    # catch-all's (its Ingress's own: none here), and no table lookup changed that.
    m = catch_all({P + "permanent-redirect": "https://e.test/"}) + admin(
        {P + "temporal-redirect": "https://t.test/"}) + WEB
    r = proxy_answer(wire("GET /x HTTP/1.1\r\nHost: admin.test"), manifests=m, tls_hosts=set())
    assert (r.status, r.header(b"location")) == (302, b"https://t.test/")


def _explain(capsys: pytest.CaptureFixture[str], files: Path, *args: str) -> dict[str, object]:
    assert main(["explain", "-f", str(files), "-o", "json", *args]) == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_defect_explain_agrees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ``explain`` asks the proxy core (_explain_verdict.py): proxied, not redirected. Before:
    # 301 / 302 verdicts.
    files = tmp_path / "m.yaml"
    files.write_text(catch_all({P + "permanent-redirect": "https://e.test/",
                                P + "app-root": "/app"})
                     + admin({P + "force-ssl-redirect": "true"}) + WEB)
    for url in ("http://other.test/x", "http://other.test/", "/x", "/"):
        doc = _explain(capsys, files, url)
        verdict = doc["verdict"]
        assert isinstance(verdict, dict)
        assert doc["status"] == 200 and verdict["proxied"] is True, (url, verdict)
        assert "location" not in verdict
    doc = _explain(capsys, files, "http://admin.test/x")  # session 14: the owner's, unchanged
    verdict = doc["verdict"]
    assert isinstance(verdict, dict)
    assert (verdict["status"], verdict["location"]) == (308, "https://admin.test/x")
    files.write_text(catch_all({P + "whitelist-source-range": "10.0.0.0/8",
                                P + "permanent-redirect": "https://e.test/"}) + WEB)
    doc = _explain(capsys, files, "--client-ip", "192.0.2.1", "http://other.test/x")
    assert doc["status"] == 403
