"""Session 26, the lead's own checks of round 1's hand-offs.

``serve --kubernetes`` reads the Opaque Secrets the Ingresses name (``AuthSecrets``, fed by
``auth_secret_refs``): the CA Secret of ``auth-tls-secret`` is one (client certificates,
ingresslib/_tls.py), or the hosts with auth-tls-* answer 503 in a cluster (their Secret never
fetched) while the same manifests from files verify.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib import Resources
from ingresslib._kube_auth import auth_secret_refs

P = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, annotations: dict[str, str], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": f"{name}.test", "http": {
            "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }


@pytest.mark.parametrize("ref, expected", [
    ("default/ca", {("default", "ca")}),
    (" default / ca ", {("default", "ca")}),   # Go's parse drops the spaces, as the proxy does
    ("other/ca", set()),                       # another namespace: refused, never fetched
    ("ca", set()),                             # not "namespace/name"
    ("default/a/b", set()),
])
def test_auth_tls_secret_is_a_named_secret(ref: str, expected: set[tuple[str, str]]) -> None:
    res = Resources.from_dicts([_ingress("a", {P + "auth-tls-secret": ref})])
    assert set(auth_secret_refs(res.ingresses)) == expected


def test_proxy_ssl_secret_is_fetched_in_cluster_mode() -> None:
    # proxy-ssl-secret (backend TLS: ca.crt, tls.crt, tls.key) is an Opaque Secret too: in
    # cluster mode it was never fetched, the routes 503 ("no such Secret").
    res = Resources.from_dicts([_ingress("a", {P + "proxy-ssl-secret": "default/backend-ca"}),
                                _ingress("b", {P + "proxy-ssl-secret": "other/ca"})])
    assert set(auth_secret_refs(res.ingresses)) == {("default", "backend-ca")}


def test_a_canarys_auth_tls_secret_is_not_fetched_and_basic_auth_still_is() -> None:
    res = Resources.from_dicts([
        _ingress("a", {P + "auth-tls-secret": "default/ca", P + "canary": "true",
                       P + "canary-weight": "10"}),
        _ingress("b", {P + "auth-type": "basic", P + "auth-secret": "users",
                       P + "auth-tls-secret": "default/ca2"}),
    ])
    assert set(auth_secret_refs(res.ingresses)) == {("default", "users"), ("default", "ca2")}


# ---------------------------------------------------------------- global auth in IngressASGI
#
# ``no-auth-locations`` (default "/.well-known/acme-challenge", config.go) skips the global
# auth for a rule whose path starts with one of them. A rule without annotations is parsed
# without its path (one shared parse), so the test is the request's (``effective_auth``): the
# core made it, IngressASGI asked the auth service anyway (a 500 with the service down; an
# ACME HTTP-01 challenge must never need credentials).


def test_ingress_asgi_skips_global_auth_on_a_no_auth_location() -> None:
    import asyncio
    import dataclasses

    from _proxy_harness import ingress_yaml
    from test_asgi_conformance import SERVICE, asgi_call

    from ingresslib.proxy import ProxySettings

    manifests = (ingress_yaml("acme", "a.test", {}, path="/.well-known/acme-challenge")
                 + ingress_yaml("app", "a.test", {}, path="/app")
                 + SERVICE.replace("SVC", "web"))

    async def run() -> list[Any]:
        seen: list[bytes] = []

        async def auth(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            seen.append(await r.readuntil(b"\r\n\r\n"))
            w.write(b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n")
            await w.drain()
            w.close()

        srv = await asyncio.start_server(auth, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        settings = dataclasses.replace(
            ProxySettings(), global_auth_url=f"http://127.0.0.1:{port}/auth",
            proxy_read_timeout=1)
        try:
            acme = await asgi_call("GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a.test",
                                   manifests=manifests, settings=settings)
            app = await asgi_call("GET /app/x HTTP/1.1\r\nHost: a.test",
                                  manifests=manifests, settings=settings)
        finally:
            srv.close()
        return [acme, app, seen]

    acme, app, seen = asyncio.run(run())
    assert acme.app_ran and acme.status == 200       # no auth asked for the challenge
    assert app.status == 401 and not app.app_ran     # the global auth everywhere else
    assert len(seen) == 1 and seen[0].startswith(b"GET /auth HTTP/1.1\r\n")


# ---------------------------------------------------------------- PROXY protocol and real IP
#
# With use-proxy-protocol, nginx.tmpl writes "real_ip_header proxy_protocol" instead of the
# forwarded-for header: the client address is the PROXY header's source. The core kept reading
# X-Forwarded-For when the header's source was inside proxy-real-ip-cidr and
# use-forwarded-headers was on, so such a client chose its own address (allowlists, rate
# limits, logs, X-Real-IP).


def test_proxy_protocol_client_address_is_never_a_forwarded_for_chain() -> None:
    from _proxy_harness import ingress_yaml
    from test_asgi_conformance import SERVICE

    import ingresslib
    from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendUpstream

    manifests = ingress_yaml("a", "a.test", {}) + SERVICE.replace("SVC", "web")
    settings = ProxySettings(use_proxy_protocol=True, use_forwarded_headers=True,
                             proxy_real_ip_cidr=("10.0.0.0/8",))
    proxy = Proxy(ingresslib.Router(ingresslib.parse_manifests(manifests)), settings)
    # the PROXY header's source (a client inside the load balancer's network), as the driver
    # passes it
    conn = proxy.connection(("10.2.2.2", 40000), local_port=80, now=0.0)
    acts = conn.start(0.0) + conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n", 0.0)
    opened = [a for a in acts if isinstance(a, OpenUpstream)]
    acts += conn.upstream_connected(opened[0].conn_id, 0.0)
    head = b"".join(a.data for a in acts if isinstance(a, SendUpstream)).lower()
    assert b"\r\nx-real-ip: 10.2.2.2\r\n" in head
    assert b"x-real-ip: 6.6.6.6" not in head


# ---------------------------------------------------------------- explain: satisfy
#
# explain took its statuses from the core, so `satisfy: any` answered right, but its access
# description did not say the mode: "source ranges ... basic authentication" read as both
# required.


def test_explain_states_the_satisfy_mode(capsys: Any, tmp_path: Any) -> None:
    from test_explain_s26 import _BACKENDS, _ingress, _res

    import ingresslib
    from ingresslib._cli import main as cli_main

    ann = {P + "whitelist-source-range": "10.1.0.0/16", P + "auth-type": "basic",
           P + "auth-secret": "users"}
    users = """
---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
type: Opaque
stringData: {auth: "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="}
"""
    any_res = _res(_ingress({**ann, P + "satisfy": "any"}), extra=users)
    all_res = _res(_ingress(ann), extra=users)
    assert ingresslib.explain(any_res, "http://a.test/x")["access"]["satisfy"] == "any"
    assert ingresslib.explain(all_res, "http://a.test/x")["access"]["satisfy"] == "all"
    f = tmp_path / "m.yaml"
    f.write_text(_ingress({**ann, P + "satisfy": "any"}) + _BACKENDS + users)
    cli_main(["explain", "-f", str(f), "--client-ip", "10.1.2.3", "http://a.test/x"])
    assert "satisfy any: one check that lets the request in suffices" in capsys.readouterr().out


def test_digest_auth_secret_is_fetched_in_cluster_mode_too() -> None:
    # auth-type: digest reads its htdigest Secret as basic auth does (proxy/_digest.py): in
    # cluster mode it was never fetched (only "basic" named a Secret), every route 503.
    res = Resources.from_dicts([
        _ingress("a", {P + "auth-type": "digest", P + "auth-secret": "digest-users"}),
        _ingress("b", {P + "auth-type": "basic", P + "auth-secret": "users"}),
        _ingress("c", {P + "auth-type": "ntlm", P + "auth-secret": "never"}),
    ])
    assert set(auth_secret_refs(res.ingresses)) == {("default", "digest-users"),
                                                    ("default", "users")}


def test_satisfy_any_with_digest_accepts_credentials_in_ingress_asgi_as_in_the_core() -> None:
    # satisfy: any hands the access decision to proxy/_satisfy.py; IngressASGI's call gave no
    # request to digest authentication, so valid digest credentials from an address the
    # allowlist refuses were a 401 there and a 200 through the core.
    from test_digest_auth_s26 import DIGEST, Asgi, Core, authorization, challenge_fields, manifests

    m = manifests({**DIGEST, P + "satisfy": "any", P + "whitelist-source-range": "10.9.9.9/32"})
    core, asgi = Core(m), Asgi(m)
    status, headers, _ = core.ask()
    assert status == 401
    assert core.ask(authorization(challenge_fields(headers[b"www-authenticate"])["nonce"]))[0] \
        == 200
    status, h = asgi.ask()
    assert status == 401 and not asgi.seen
    assert asgi.ask(authorization(challenge_fields(h[b"www-authenticate"])["nonce"]))[0] == 200
    assert len(asgi.seen) == 1


# ---------------------------------------------------------------- ConfigMap defaults
#
# The ConfigMap keys proxy-http-version and use-port-in-redirects (config.go defaults.Backend)
# are the annotations' defaults: read into ProxySettings, but the route options used fixed
# defaults ("1.1", off).


def test_configmap_location_defaults_reach_the_core() -> None:
    from test_explain_s26b import _BACKENDS, _ingress

    from ingresslib import Router, parse_manifests
    from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream, SendUpstream

    def first(annotations: dict[str, str]) -> tuple[bytes, bytes]:
        res = parse_manifests(_ingress(annotations) + _BACKENDS)
        s = ProxySettings(proxy_http_version="1.0", use_port_in_redirects=True)
        conn = Proxy(Router(res, seed=0), s).connection("10.1.1.1", now=0.0)
        acts = conn.receive_data(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n", now=0.0)
        down = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
        op = next((a for a in acts if isinstance(a, OpenUpstream)), None)
        up = b"" if op is None else b"".join(
            a.data for a in conn.upstream_connected(op.conn_id, now=0.0)
            if isinstance(a, SendUpstream))
        return down, up

    down, _ = first({P + "force-ssl-redirect": "true"})
    assert b"location: https://a.test:443/x\r\n" in down.lower()
    assert first({})[1].startswith(b"GET /x HTTP/1.0\r\n")
    # the annotation still wins
    assert first({P + "proxy-http-version": "1.1"})[1].startswith(b"GET /x HTTP/1.1\r\n")


def test_server_alias_lowers_ascii_only() -> None:
    # "\u212a.test" (a Kelvin sign) lowered with Unicode rules became the alias k.test: a
    # name nginx's server_name (A-Z folding) never matches stood for another host.
    from ingresslib._table import parse_server_alias

    names, refused = parse_server_alias("\u212a.test, K.Test")
    assert names == ["k.test"]
    assert len(refused) == 1 and "\u212a.test" in refused[0]
