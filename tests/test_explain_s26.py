"""Session 26 (EX3): ``explain`` and ``check`` know round 1's features, each statement taken
from the proxy core's own answer (``Proxy.connection``) for the same request:

- ``auth-url``: the request first goes to the auth service (``ext_auth.sent``: where, the
  request line, its Host), and only an allowing answer lets it reach the backend: the verdict
  names the backend, not the auth service (before: "proxied to <auth host>"); ``on_401``: the
  auth-signin's 302. custom-http-errors' ``intercepts`` look past the auth step too.
- ``mirror-target`` (``mirror``: the copy the core's ``Mirror`` action sends), ``limit-rate``
  / ``limit-rate-after`` (``limit_rate``).
- ``auth-tls-*`` (``client_cert_auth``): with an HTTPS listener the host's client certificate
  authentication answers (400 for a client without certificate), without one the routes'
  503 is said as such; an https:// URL was "rejected: the proxy refuses the request head".
- ``ssl-passthrough``: ``check`` reports what serve logs of the annotation; an https:// URL
  of a passthrough host says where the TLS connection is piped (``ssl_passthrough``).
- the ConfigMap's ``custom-http-errors``: ``default_backend.intercepts`` as for the annotation.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import trustme

import ingresslib
from ingresslib import Router, parse_manifests
from ingresslib._cli import main as cli_main
from ingresslib.proxy import Mirror, OpenUpstream, Proxy, ProxySettings, SendDownstream
from ingresslib.proxy import SendUpstream

P = "nginx.ingress.kubernetes.io/"
AUTH_URL = "http://10.5.0.1:4180/oauth2/auth?x=1"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

_BACKENDS = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.0.0.1"]}]
ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: errors, namespace: default}
spec:
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: errors-1, namespace: default, labels: {kubernetes.io/service-name: errors}}
addressType: IPv4
endpoints: [{addresses: ["10.0.0.9"]}]
ports: [{port: 8080}]
"""


def _ingress(annotations: dict[str, str], host: str = "a.test", name: str = "site",
             path: str = "/", service: str = "web") -> str:
    ann = ", ".join(f"{k!r}: {v!r}" for k, v in annotations.items())
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  annotations: {{{ann}}}
spec:
  rules:
  - host: {host!r}
    http:
      paths:
      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
"""


def _res(*ingresses: str, extra: str = "") -> Any:
    return parse_manifests("".join(ingresses) + _BACKENDS + extra)


def _core(res: Any, target: str = "/x", host: str = "a.test",
          settings: ProxySettings | None = None) -> tuple[Any, list[Any]]:
    """A core connection over a Router of ``res`` and its first actions for a GET."""
    proxy = Proxy(Router(res, seed=0), settings)
    conn = proxy.connection("10.1.1.1", now=0.0)
    acts = list(conn.receive_data(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
                                  now=0.0))
    return conn, acts


# --- auth-url ------------------------------------------------------------------------------------

AUTH = {P + "auth-url": AUTH_URL, P + "auth-signin": "https://login.test/start",
        P + "auth-response-headers": "X-User, X-Email"}


def test_auth_url_verdict_is_the_backend_not_the_auth_service() -> None:
    res = _res(_ingress(AUTH))
    doc = ingresslib.explain(res, "http://a.test/x")
    v = doc["verdict"]
    # Before: "proxied to 10.5.0.1:4180" (the auth subrequest's OpenUpstream taken for the
    # backend) and upstream_host "10.5.0.1".
    assert v["proxied"] and v["reason"].startswith("proxied to 10.0.0.1:8080")
    assert "auth-url" in v["reason"]
    assert v["upstream_host"] == "a.test"
    # The core: the first upstream is the auth service, the backend only after its 200.
    conn, acts = _core(res)
    first = next(a for a in acts if isinstance(a, OpenUpstream))
    assert first.endpoint == ("10.5.0.1", 4180)
    sent = b"".join(a.data for a in conn.upstream_connected(first.conn_id, now=0.0)
                    if isinstance(a, SendUpstream))
    assert sent.startswith(b"GET /oauth2/auth?x=1 HTTP/1.1\r\nhost: 10.5.0.1\r\n")
    nxt = next(a for a in conn.upstream_data(first.conn_id, _OK, now=0.0)
               if isinstance(a, OpenUpstream))
    assert nxt.endpoint == ("10.0.0.1", 8080)


def test_auth_url_step_in_json_and_text(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    res = _res(_ingress(AUTH))
    ext = ingresslib.explain(res, "http://a.test/x")["ext_auth"]
    assert ext["url"] == AUTH_URL and ext["method"] == "GET"
    assert ext["sent"] == {"endpoint": "10.5.0.1:4180", "tls": False,
                           "request": "GET /oauth2/auth?x=1", "host": "10.5.0.1"}
    assert ext["response_headers"] == ["X-User", "X-Email"]
    assert ext["signin"] == "https://login.test/start"
    # The core's answer to the auth service's 401: auth-signin's 302.
    conn, acts = _core(res)
    first = next(a for a in acts if isinstance(a, OpenUpstream))
    list(conn.upstream_connected(first.conn_id, now=0.0))
    out = b"".join(a.data for a in conn.upstream_data(
        first.conn_id, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", now=0.0)
        if isinstance(a, SendDownstream))
    assert out.startswith(b"HTTP/1.1 302 ")
    location = next(line.split(b": ", 1)[1] for line in out.split(b"\r\n")
                    if line.lower().startswith(b"location:")).decode()
    assert ext["on_401"] == {"status": 302, "location": location}
    assert location.startswith("https://login.test/start?rd=")
    f = tmp_path / "m.yaml"
    f.write_text(_ingress(AUTH) + _BACKENDS)
    assert cli_main(["explain", "-f", str(f), "http://a.test/x"]) == 0
    text = capsys.readouterr().out
    assert ("auth-url: first GET /oauth2/auth?x=1 to the auth service 10.5.0.1:4180 (http, "
            "Host: 10.5.0.1); on a 2xx answer: proxied to 10.0.0.1:8080") in text
    assert "X-User, X-Email" in text and f"redirect to {location}" in text


def test_auth_url_not_asked_when_basic_auth_answers_first() -> None:
    secret = """
---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData: {auth: "alice:$apr1$x$y"}
"""
    ann = {**AUTH, P + "auth-type": "basic", P + "auth-secret": "users"}
    res = _res(_ingress(ann), extra=secret)
    doc = ingresslib.explain(res, "http://a.test/x")
    assert doc["verdict"]["status"] == 401
    assert doc["ext_auth"]["sent"] is None
    _, acts = _core(res)
    assert not any(isinstance(a, OpenUpstream) for a in acts)


def test_auth_url_route_without_endpoint_answers_503_after_the_auth_step() -> None:
    res = parse_manifests(_ingress(AUTH, service="missing") + _BACKENDS)
    doc = ingresslib.explain(res, "http://a.test/x")
    assert doc["status"] == 503 and doc["verdict"]["status"] == 503
    assert doc["ext_auth"]["sent"]["endpoint"] == "10.5.0.1:4180"


def test_custom_http_errors_intercepts_look_past_the_auth_step() -> None:
    ann = {**AUTH, P + "default-backend": "errors", P + "custom-http-errors": "404"}
    res = _res(_ingress(ann))
    db = ingresslib.explain(res, "http://a.test/x")["default_backend"]
    # Before: the auth service's answer of 404 was taken for the backend's: none intercepted.
    assert db["intercepts"] == [404]
    assert "10.0.0.9:8080" in db["reason"]


# --- mirror, limit-rate ------------------------------------------------------------------------

def test_mirror_copy_as_the_core_sends_it() -> None:
    ann = {P + "mirror-target": "http://10.9.0.1:8080$request_uri"}
    res = _res(_ingress(ann))
    m = ingresslib.explain(res, "http://a.test/x?q=1")["mirror"]
    _, acts = _core(res, "/x?q=1")
    mirror = next(a for a in acts if isinstance(a, Mirror))
    assert mirror.endpoint == ("10.9.0.1", 8080)
    assert mirror.data.startswith(b"GET /x?q=1 HTTP/1.1\r\n")
    assert m["target"] == "http://10.9.0.1:8080$request_uri"
    assert m["sent"] == {"endpoint": "10.9.0.1:8080", "tls": False, "request": "GET /x?q=1",
                         "host": "10.9.0.1", "body": False}
    text = ingresslib._explain.render_text(ingresslib.explain(res, "http://a.test/x?q=1"))
    assert "mirror: a copy goes to 10.9.0.1:8080 (http, GET /x?q=1, Host: 10.9.0.1" in text


def test_mirror_not_sent_for_a_local_answer() -> None:
    ann = {P + "mirror-target": "http://10.9.0.1:8080/m",
           P + "whitelist-source-range": "192.0.2.0/24"}
    res = _res(_ingress(ann))
    doc = ingresslib.explain(res, "http://a.test/x", client_ip="10.1.1.1")
    assert doc["verdict"]["status"] == 403
    assert doc["mirror"]["sent"] is None
    _, acts = _core(res)
    assert not any(isinstance(a, Mirror) for a in acts)


def test_limit_rate_as_parsed_by_the_proxy() -> None:
    res = _res(_ingress({P + "limit-rate": "100", P + "limit-rate-after": "1000"}))
    r = ingresslib.explain(res, "http://a.test/x")["limit_rate"]
    assert r == {"bytes_per_second": 100 * 1024, "after_bytes": 1000 * 1024, "applies": True}
    # The ConfigMap's limit-rate for a route without the annotation.
    r = ingresslib.explain(_res(_ingress({})), "http://a.test/x",
                           settings=ProxySettings(limit_rate=8))["limit_rate"]
    assert r["bytes_per_second"] == 8 * 1024 and r["after_bytes"] == 0
    assert "limit_rate" not in ingresslib.explain(_res(_ingress({})), "http://a.test/x")


# --- auth-tls ----------------------------------------------------------------------------------

def _mtls(annotations: dict[str, str] | None = None) -> Any:
    ca = trustme.CA()
    secret = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: client-ca, namespace: default}}
data:
  ca.crt: {base64.b64encode(ca.cert_pem.bytes()).decode()}
"""
    ann = {P + "auth-tls-secret": "default/client-ca", **(annotations or {})}
    return _res(_ingress(ann, host="m.test"), extra=secret)


def test_auth_tls_https_without_certificate_is_400_not_a_malformed_head() -> None:
    res = _mtls()
    doc = ingresslib.explain(res, "https://m.test/x")
    # Before: "rejected: the proxy refuses the request head (400)", no match.
    assert doc["match"] is not None and doc["status"] == 400
    assert "No required SSL certificate was sent" in doc["verdict"]["reason"]
    c = doc["client_cert_auth"]
    assert c["served"] and c["secret"] == "default/client-ca" and c["verify_client"] == "on"


def test_auth_tls_optional_is_proxied() -> None:
    doc = ingresslib.explain(_mtls({P + "auth-tls-verify-client": "optional"}),
                             "https://m.test/x")
    assert doc["verdict"]["proxied"] and doc["status"] == 200
    assert doc["client_cert_auth"]["verify_client"] == "optional"


def test_auth_tls_without_https_listener_says_why_503() -> None:
    res = _mtls()
    doc = ingresslib.explain(res, "http://m.test/x")
    assert doc["verdict"]["status"] == 503
    assert "--tls-listen" in doc["verdict"]["reason"]
    assert doc["client_cert_auth"] == {"served": False}
    # With the HTTPS listener (serve --tls-listen): plain HTTP passes (no match-cn).
    assert ingresslib.explain(res, "http://m.test/x", tls=True)["verdict"]["proxied"]


# --- ssl-passthrough -----------------------------------------------------------------------------

PT = {P + "ssl-passthrough": "true"}


def test_check_reports_passthrough_warnings() -> None:
    res = _res(_ingress(PT, host="pt.test"), _ingress(PT, host="*.wild.test", name="wild"),
               _ingress(PT, host="noroot.test", name="noroot", path="/api"),
               _ingress({P + "ssl-passthrough": "yes"}, host="bad.test", name="bad"),
               _ingress({**PT, P + "canary": "true"}, host="pt.test", name="can"))
    found = {(d.object, d.message.split(":")[0].split(" (")[0])
             for d in ingresslib.check(res, ssl_passthrough=True)
             if d.field == f"metadata.annotations[{P}ssl-passthrough]"}
    assert found == {
        ("Ingress default/bad", "invalid value 'yes'"),
        ("Ingress default/wild", "ignored for host *.wild.test"),
        ("Ingress default/noroot", "host noroot.test has no '/' rule"),
        ("Ingress default/can", "ignored on a canary Ingress"),
    }
    assert all(d.severity == "warning" for d in ingresslib.check(res, ssl_passthrough=True))


def test_explain_https_passthrough_host_is_piped() -> None:
    res = _res(_ingress(PT, host="pt.test"))
    pt = ingresslib.explain(res, "https://pt.test/x", ssl_passthrough=True)["ssl_passthrough"]
    assert pt["host"] == "pt.test" and pt["endpoint"] == "10.0.0.1:8080"
    assert pt["reason"].startswith("piped to 10.0.0.1:8080 without TLS termination (with "
                                   "--enable-ssl-passthrough)")
    text = ingresslib._explain.render_text(
        ingresslib.explain(res, "https://pt.test/x", ssl_passthrough=True))
    assert "ssl-passthrough: piped to 10.0.0.1:8080" in text
    assert "ssl_passthrough" not in ingresslib.explain(res, "http://pt.test/x")
    no_root = _res(_ingress(PT, host="pt.test", path="/api"))
    assert ingresslib.explain(no_root, "https://pt.test/api",
                              ssl_passthrough=True)["ssl_passthrough"]["endpoint"] is None


# --- the ConfigMap's custom-http-errors ----------------------------------------------------------

def test_configmap_custom_http_errors_shown_as_the_annotation() -> None:
    res = _res(_ingress({P + "default-backend": "errors"}))
    settings = ProxySettings(custom_http_errors="404,503")
    db = ingresslib.explain(res, "http://a.test/x", settings=settings)["default_backend"]
    assert db["intercepts"] == [404, 503]
    assert db["intercepts_from"] == "configmap"
    assert "custom-http-errors (the ConfigMap's key): an upstream answer 404, 503" in db["reason"]
    # The annotation's own list overrides the key, and says so.
    res = _res(_ingress({P + "default-backend": "errors", P + "custom-http-errors": "503"}))
    db = ingresslib.explain(res, "http://a.test/x", settings=settings)["default_backend"]
    assert db["intercepts"] == [503] and db["intercepts_from"] == "annotation"
    assert json.loads(json.dumps(db))["intercepts"] == [503]


# --- use-proxy-protocol --------------------------------------------------------------------------

def test_proxy_protocol_says_what_client_ip_stands_for() -> None:
    res = _res(_ingress({}))
    settings = ProxySettings(use_proxy_protocol=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    doc = ingresslib.explain(res, "http://a.test/x", client_ip="203.0.113.7", settings=settings)
    assert doc["verdict"]["proxy_protocol"] is True
    assert doc["verdict"]["client_ip"] == "203.0.113.7"
    text = ingresslib._explain.render_text(doc)
    assert "use-proxy-protocol: --client-ip stands for the address the PROXY protocol" in text
    assert "proxy_protocol" not in ingresslib.explain(res, "http://a.test/x")["verdict"]


def test_auth_tls_host_other_than_the_sni_is_421() -> None:
    ca = trustme.CA()
    secret = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: client-ca, namespace: default}}
data:
  ca.crt: {base64.b64encode(ca.cert_pem.bytes()).decode()}
"""
    res = _res(_ingress({P + "auth-tls-secret": "default/client-ca"}, host="m.test"),
               _ingress({}, host="o.test", name="other"), extra=secret)
    doc = ingresslib.explain(res, "https://o.test/x", headers={"Host": "m.test"})
    assert doc["status"] == 421 and doc["match"] is not None
    assert "421 Misdirected Request" in doc["verdict"]["reason"]


def test_auth_url_proxy_set_headers_configmap_missing_is_the_core_503() -> None:
    res = _res(_ingress({**AUTH, P + "auth-proxy-set-headers": "default/nope"}))
    doc = ingresslib.explain(res, "http://a.test/x")
    # Before: no verdict at all (the 503 the core answers on connecting was not read).
    assert doc["verdict"]["status"] == 503 and doc["status"] == 503
    assert doc["ext_auth"]["sent"] is None
    assert "not found" in doc["ext_auth"]["proxy_set_headers"]["problem"]
    conn, acts = _core(res)
    first = next(a for a in acts if isinstance(a, OpenUpstream))
    out = b"".join(a.data for a in conn.upstream_connected(first.conn_id, now=0.0)
                   if isinstance(a, SendDownstream))
    assert out.startswith(b"HTTP/1.1 503 ")
    text = ingresslib._explain.render_text(doc)
    assert (f"auth-url {AUTH_URL}: not asked: auth-proxy-set-headers ConfigMap "
            "'default/nope' not found") in text
