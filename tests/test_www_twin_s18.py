"""Review findings of session 18 (Y18): www twins, denied locations, hook failures, canaries.

- A ``from-to-www-redirect`` twin is answered by its own server even where the router would
  route the host (a ``*.`` rule, a host-less rule, a catch-all default backend): ingress-nginx
  gives the twin a server of its own. kubernetes/ingress-nginx
  internal/ingress/controller/nginx.go ``buildRedirects`` makes a redirect server for the twin
  unless "esrv.Hostname == from" for an existing server (a ``*.a.test`` server's Hostname is
  "*.a.test", not "www.a.test"); nginx.tmpl writes it as ``server { server_name {{
  $redirect.From }}; ... return {{ $all.Cfg.HTTPRedirectCode }} $redirect_to; }``. nginx's
  server selection (ngx_http_core_module, server_name): "exact name" first, then "longest
  wildcard name starting with an asterisk", and the default server only when no name matches.
- A host-only rule (no ``http``) asks for no twin (controller.go ``getBackendServers``).
- A location denied by an unusable basic-auth Secret answers 503 before its redirects and its
  413 (nginx.tmpl writes only "# Location denied. Reason: ... return 503;" in it).
- A duck-typed router whose ``observe`` raises, or a ``request_id`` callable that raises, no
  longer costs the request its answer (the core logs it, rate-limited, and goes on).
- A canary copied from its main Ingress is not told its copied location annotations are
  ignored (``parse_each_route`` passes the main rule's annotations).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import IngressASGI, parse_manifests
from ingresslib._cli import main
from ingresslib._router import Router
from ingresslib._www import www_twins

sys.path.insert(0, str(Path(__file__).parent))
from _asgi_call import asgi_get  # noqa: E402
from _proxy_harness import (  # noqa: E402
    FakeRouter, ProxyPair, Reply, Route, ingress_yaml, status_of)
from test_access_control_s13 import BASIC, HTPASSWD, _secret  # noqa: E402
from test_asgi_conformance import asgi_call, proxy_answer, wire  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
WWW = {P + "from-to-www-redirect": "true"}

# -- a www twin beats the routes the router would pick ------------------------------------------

CATCH_ALL = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: catch, namespace: default, creationTimestamp: '2024-03-01T00:00:00Z'}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""
CASES = {
    "wildcard rule": ingress_yaml("w", "*.a.test", created="2024-03-01T00:00:00Z"),
    "host-less rule": ingress_yaml("h", "", created="2024-03-01T00:00:00Z"),
    "catch-all default backend": CATCH_ALL,
}


def _core(manifests: str, host: str, target: str = "/x?q=1") -> tuple[int, bytes | None]:
    pair = ProxyPair(router=Router(parse_manifests(manifests)))
    out = pair.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    lines = out.split(b"\r\n\r\n")[0].split(b"\r\n")
    loc = next((ln.partition(b":")[2].strip() for ln in lines[1:]
                if ln.lower().startswith(b"location:")), None)
    return int(lines[0].split(b" ")[1]), loc


@pytest.mark.parametrize("other", sorted(CASES))
def test_twin_beats_what_the_router_would_route(other: str) -> None:
    manifests = ingress_yaml("a", "a.test", WWW) + CASES[other]
    # nginx.tmpl: "return {{ $all.Cfg.HTTPRedirectCode }} $redirect_to;" (308 by default),
    # $redirect_to = "http://a.test" .. $request_uri.
    assert _core(manifests, "www.a.test") == (308, b"http://a.test/x?q=1")
    # The other hosts still go where the router sends them (no endpoint here: 503).
    assert _core(manifests, "b.a.test" if other == "wildcard rule" else "b.test")[0] == 503


@pytest.mark.parametrize("other", sorted(CASES))
def test_twin_beats_routes_in_the_asgi_adapter(other: str) -> None:
    manifests = ingress_yaml("a", "a.test", WWW) + CASES[other]
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asgi = IngressASGI(parse_manifests(manifests), backends={"default/web": app})
    status, headers = asgi_get(asgi, "www.a.test")
    assert (status, headers.get(b"location"), calls) == (308, b"http://a.test/x?q=1", [])


def test_twin_set_is_built_once_per_table() -> None:
    # The check before routing reads the table and tests identity; the set is rebuilt only
    # when the router's table changes (the update of an Ingress).
    import ingresslib.proxy._actions as actions

    calls = 0
    real = actions.www_twins

    def counting(served: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(served)

    manifests = ingress_yaml("a", "a.test", WWW) + CASES["wildcard rule"]
    router = Router(parse_manifests(manifests))
    pair = ProxyPair(router=router)
    actions.www_twins = counting  # type: ignore[assignment]
    try:
        for _ in range(5):
            pair.send(b"GET / HTTP/1.1\r\nHost: b.a.test\r\n\r\n")
        assert calls == 1
        router.update(parse_manifests(ingress_yaml("a", "a.test") + CASES["wildcard rule"]))
        assert status_of(pair.send(b"GET / HTTP/1.1\r\nHost: www.a.test\r\n\r\n")) == 503
        assert calls == 2
    finally:
        actions.www_twins = real  # type: ignore[assignment]


# -- a host-only rule asks for no twin ----------------------------------------------------------

HOST_ONLY = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bare
  namespace: default
  creationTimestamp: '2024-01-01T00:00:00Z'
  annotations: {nginx.ingress.kubernetes.io/from-to-www-redirect: "true"}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
  rules:
  - host: a.test
"""


def _twins(manifests: str) -> dict[str, str]:
    served = Router(parse_manifests(manifests)).table.served
    return {twin: to for twin, (to, _ing) in www_twins(served).items()}


def test_host_only_rule_asks_for_no_twin() -> None:
    # kubernetes/ingress-nginx internal/ingress/controller/controller.go getBackendServers:
    #   if rule.HTTP == nil && host != defServerName { klog.V(3).Infof("Ingress %q does not
    #       contain any HTTP rule, using default backend", ingKey); continue }
    #   ... (per path) locationApplyAnnotations(loc, anns); if loc.Redirect.FromToWWW {
    #       server.RedirectFromToWWW = true }
    # createServers makes the host's server (and its "location /") without setting the flag:
    # a rule without paths never asks for the twin.
    assert _twins(HOST_ONLY) == {}
    assert _core(HOST_ONLY, "www.a.test")[0] != 308
    # The same Ingress with a path for the host asks.
    with_path = HOST_ONLY.replace("  - host: a.test\n", "  - host: a.test\n    http:\n"
                                  "      paths:\n      - {path: /, pathType: Prefix, backend: "
                                  "{service: {name: web, port: {number: 80}}}}\n")
    assert _twins(with_path) == {"www.a.test": "a.test"}
    # A host-only rule still makes a server: it is no twin of another Ingress's host.
    assert _twins(ingress_yaml("w", "www.a.test", WWW, created="2024-02-01T00:00:00Z")
                  + HOST_ONLY) == {}


# -- a location denied by its basic-auth Secret: 503 before redirects and the 413 ----------------

HEAD = "GET /app/x HTTP/1.1\r\nHost: a.test"
DENYING = {
    "permanent-redirect": {P + "permanent-redirect": "https://b.test/"},
    "temporal-redirect": {P + "temporal-redirect": "https://b.test/"},
    "force-ssl-redirect": {P + "force-ssl-redirect": "true"},
    "proxy-body-size": {P + "proxy-body-size": "1"},
}


def _denied_manifests(extra: dict[str, str], path: str = "/app") -> str:
    # The basic-auth Secret "users" is missing: ingress-nginx denies the location
    # (auth/main.go "unexpected error reading secret", LocationDenied).
    return ingress_yaml("admin", "a.test", {**BASIC, **extra}, path=path) + _SERVICE


_SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
"""


@pytest.mark.parametrize("kind", sorted(DENYING))
def test_secret_denial_comes_before_redirects_and_413(kind: str) -> None:
    m = _denied_manifests(DENYING[kind])
    body = b"xx"
    request = wire(HEAD + "\r\nContent-Length: 2", body)
    assert proxy_answer(request, manifests=m).status == 503
    # With the Secret there, the location's own answer comes back (its redirect, its 413,
    # else the 401 of basic auth): the 503 is the Secret's.
    present = m + _secret("users", {"auth": HTPASSWD})
    assert proxy_answer(request, manifests=present).status in (301, 302, 308, 413)


@pytest.mark.parametrize("kind", sorted(DENYING))
def test_secret_denial_in_the_adapter(kind: str) -> None:
    m = _denied_manifests(DENYING[kind])
    got = asyncio.run(asgi_call(HEAD + "\r\nContent-Length: 2", body=[b"xx"], manifests=m))
    assert got.status == 503 and not got.app_ran


def test_secret_denial_of_the_server_location() -> None:
    # A path no rule covers is served by the host's "location /", which carries the oldest
    # Ingress's annotations: denied there too, before its redirect.
    m = _denied_manifests(DENYING["permanent-redirect"])
    head = "GET /other HTTP/1.1\r\nHost: a.test"
    assert proxy_answer(wire(head), manifests=m).status == 503
    got = asyncio.run(asgi_call(head, manifests=m))
    assert got.status == 503 and not got.app_ran


# -- hooks that raise ---------------------------------------------------------------------------

class ObserveRaises(FakeRouter):
    def observe(self, decision: Any, endpoint: tuple[str, int], seconds: float,
                ok: bool) -> None:
        raise RuntimeError("observe broke")


def test_observe_raising_still_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "ingresslib.proxy")
    router = ObserveRaises([Route(endpoints=[("10.0.0.1", 8080)])])
    # A refused connect: 502 after ``observe(..., ok=False)``.
    p = ProxyPair(router=router, refuse=[("10.0.0.1", 8080)])
    out = p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 502 and not p.closed
    # A second failure within the minute is not logged again.
    out = p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 502
    logged = [r for r in caplog.records if "router.observe failed" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_observe_raising_on_success_keeps_the_response() -> None:
    p = ProxyPair(router=ObserveRaises([Route()]),
                  app=lambda req, body, up: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                                  b"\r\nok"))
    out = p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"ok") and p.records[-1].status == 200


def _raising_id() -> str:
    raise RuntimeError("no id")


def test_request_id_raising_on_a_refused_head(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "ingresslib.proxy")
    p = ProxyPair(request_id=_raising_id)
    out = p.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
    assert status_of(out) == 400
    rec = p.records[-1]
    assert rec.status == 400 and rec.request_id is not None and len(rec.request_id) == 32
    assert any("request_id failed" in r.getMessage() for r in caplog.records)


def test_request_id_raising_on_a_proxied_request() -> None:
    p = ProxyPair(request_id=_raising_id)
    out = p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 200
    assert b"x-request-id: " in bytes(p.upstreams[0].raw)


# -- a canary's copied annotations are not reported ignored --------------------------------------

CANARY = {P + "canary": "true", P + "canary-weight": "10"}
SHARED = {P + "rewrite-target": "/x", P + "proxy-read-timeout": "30"}


def _canary_yaml(canary_extra: dict[str, str]) -> str:
    return (ingress_yaml("main", "a.test", SHARED)
            + ingress_yaml("can", "a.test", {**CANARY, **SHARED, **canary_extra},
                           service="web2", created="2024-02-01T00:00:00Z"))


def test_check_is_silent_on_options_copied_from_the_main(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "canary.yaml"
    f.write_text(_canary_yaml({}))
    assert main(["check", "-f", str(f)]) == 0
    out, err = capsys.readouterr()
    assert "ignored on a canary" not in out + err


def test_check_names_the_option_that_differs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "canary.yaml"
    f.write_text(_canary_yaml({P + "proxy-read-timeout": "90"}))
    assert main(["check", "-f", str(f)]) == 0
    out, err = capsys.readouterr()
    assert [line for line in (out + err).splitlines() if "ignored on a canary" in line] == [
        f"warning: Ingress default/can: annotation {P}proxy-read-timeout: ignored on a canary "
        "Ingress (as in ingress-nginx: the main Ingress's applies to canary traffic)"]


def test_server_log_is_silent_on_copied_options(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    p = ProxyPair(router=Router(parse_manifests(_canary_yaml({}))))
    p.proxy.log_annotation_warnings()
    assert not [r for r in caplog.records if "ignored on a canary" in r.getMessage()]


ACCESS = {P + "whitelist-source-range": "10.0.0.0/8", P + "auth-type": "basic",
          P + "auth-secret": "users", P + "auth-url": "https://auth.test/"}


def _canary_access_warnings(canary_extra: dict[str, str],
                            caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    m = (ingress_yaml("main", "a.test", ACCESS)
         + ingress_yaml("can", "a.test", {**CANARY, **ACCESS, **canary_extra},
                        service="web2", created="2024-02-01T00:00:00Z"))
    p = ProxyPair(router=Router(parse_manifests(m)))
    p.proxy.log_annotation_warnings()
    return [r.getMessage() for r in caplog.records
            if "ignored on a canary" in r.getMessage()]


def test_copied_access_annotations_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    # The main Ingress's access annotations copied to its canary change nothing: no warning
    # per copied annotation (the main's own warnings stay).
    assert _canary_access_warnings({}, caplog) == []


def test_differing_access_annotation_is_named(caplog: pytest.LogCaptureFixture) -> None:
    got = _canary_access_warnings({P + "whitelist-source-range": "192.168.0.0/16",
                                   P + "auth-realm": "Canary"}, caplog)
    assert len(got) == 2
    assert any(P + "whitelist-source-range" in w for w in got)
    assert any(P + "auth-realm" in w for w in got)


def test_explain_says_the_twin_server_answers() -> None:
    # Needs the _explain.py change (explain_www_twin.patch): the proxy's 308, and no rule
    # claimed for the request (the twin's server answers before the *. rule).
    from ingresslib._explain import explain_url

    res = parse_manifests(ingress_yaml("a", "a.test", WWW) + CASES["wildcard rule"])
    table = Router(res).table
    out = explain_url(table, "http://www.a.test/x", res=res)
    assert out["match"] is None and out["status"] == 308
    assert "from-to-www-redirect twin of a.test" in out["reason"]
    assert out["verdict"]["status"] == 308
    # Another host under the *. rule is still that rule's.
    assert explain_url(table, "http://b.a.test/x", res=res)["match"]["host"] == "*.a.test"
