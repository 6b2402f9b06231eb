"""Session 27, the lead's own fixes (each test failed on the tree before its fix)."""

from __future__ import annotations

from ingresslib import Router, parse_manifests
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream, SendUpstream

_AUTH_YAML = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    nginx.ingress.kubernetes.io/auth-url: http://auth.test/verify
    nginx.ingress.kubernetes.io/auth-signin: https://login.test/
    nginx.ingress.kubernetes.io/auth-method: GET
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: 8080}]}]
"""


def _signin_exchange(proxy_protocol_port: int | None) -> tuple[bytes, bytes]:
    """(the auth subrequest, the client's answer) for a GET the auth service refuses (401)."""
    proxy = Proxy(Router(parse_manifests(_AUTH_YAML)), ProxySettings())
    conn = proxy.connection(("203.0.113.7", 40000), now=0.0, local_port=80,
                            proxy_protocol_port=proxy_protocol_port)
    acts = conn.start(0.0) + conn.receive_data(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)
    opened = [a for a in acts if isinstance(a, OpenUpstream)]
    assert len(opened) == 1
    acts += conn.upstream_connected(opened[0].conn_id, 0.0)
    acts += conn.upstream_data(opened[0].conn_id,
                               b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", 0.0)
    sub = b"".join(a.data for a in acts if isinstance(a, SendUpstream))
    down = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    return sub, down


def test_auth_signin_rd_and_x_scheme_follow_a_trusted_proxy_protocol_port_443() -> None:
    # lua_ingress.lua rewrite(): a PROXY protocol destination port 443 makes
    # $pass_access_scheme https; the sign-in redirect's rd ($pass_access_scheme://$http_host
    # $escaped_request_uri) and the subrequest's X-Scheme (sent with auth-method) use it.
    # Before: http (the listener's).
    sub, down = _signin_exchange(443)
    assert down.startswith(b"HTTP/1.1 302 "), down
    assert b"\r\nlocation: https://login.test/?rd=https://a.test%2Fx\r\n" in down, down
    assert b"\r\nx-scheme: https\r\n" in sub.lower(), sub
    # guard: without the PROXY port the listener's scheme stays
    sub, down = _signin_exchange(None)
    assert b"\r\nlocation: https://login.test/?rd=http://a.test%2Fx\r\n" in down, down
    assert b"\r\nx-scheme: http\r\n" in sub.lower(), sub


_TLS_AUTH_YAML = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/auth-tls-secret: shop/partner-ca
spec:
  tls: [{hosts: [shop.test], secretName: shop-tls}]
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def test_check_reports_an_unusable_auth_tls_secret() -> None:
    # serve --tls-listen logs it and every request of the host answers 503; check said "ok".
    import ingresslib

    found = [d for d in ingresslib.check(parse_manifests(_TLS_AUTH_YAML))
             if d.field == "metadata.annotations[nginx.ingress.kubernetes.io/auth-tls-secret]"]
    assert len(found) == 1, found
    d = found[0]
    assert d.object == "Ingress shop/shop" and d.severity == "warning"
    assert "shop/partner-ca" in d.message and "answers 503" in d.message, d.message
    # the CLI prints it
    import contextlib
    import io
    import pathlib
    import tempfile

    from ingresslib._cli import main

    with tempfile.TemporaryDirectory() as tmp:
        f = pathlib.Path(tmp, "m.yaml")
        f.write_text(_TLS_AUTH_YAML)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", "-f", str(f)])
    assert code == 0 and "2 warning(s)" in out.getvalue(), out.getvalue()
    assert "auth-tls-secret]: Secret shop/partner-ca not found" in err.getvalue(), err.getvalue()


def test_the_server_reads_no_private_state_of_the_core() -> None:
    # The sans-IO contract: a driver learns what to do from the actions (API.md), never from
    # the core's private attributes; a driver of one's own could not. Before: ProxyServer read
    # `self.conn._auth` (and the auth call's annotations) to pick an auth-keepalive pool; now
    # OpenUpstream.keepalive says it.
    import ast
    from pathlib import Path

    import ingresslib.proxy as pkg

    for name in ("_server.py", "_server_authpool.py"):
        tree = ast.parse((Path(pkg.__file__).parent / name).read_text())
        bad = [node.lineno for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr.startswith("_")
               and not node.attr.startswith("__")
               and isinstance(node.value, ast.Attribute) and node.value.attr == "conn"]
        assert bad == [], (name, bad)


def test_cluster_mode_watches_config_maps_for_auth_proxy_set_headers() -> None:
    # serve --kubernetes lists ConfigMaps only while an Ingress names one; an auth-url
    # Ingress's auth-proxy-set-headers ConfigMap did not count, so it was "not found" and its
    # routes answered 503 (ingress-nginx's informer reads every ConfigMap).
    from ingresslib import Resources
    from ingresslib._kube import names_config_maps

    def ing(annotations: dict[str, str]) -> dict[str, object]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
                "spec": {"rules": [{"host": "a.test", "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}

    p = "nginx.ingress.kubernetes.io/"
    assert names_config_maps(Resources.from_dicts([ing({
        p + "auth-url": "http://auth.test/", p + "auth-proxy-set-headers": "default/auth-hdrs"})]))
    assert not names_config_maps(Resources.from_dicts([ing({p + "auth-url": "http://auth.test/"})]))
