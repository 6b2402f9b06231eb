"""Session 26 (L5): ``explain`` knows round 4's features, each statement from the proxy core's own
answer (``Proxy.connection``) for the same request, and TLS host names are lower-cased as ASCII.

- ``auth-type: digest``: ``access.basic_auth.type`` says ``digest`` (before: nothing told it
  from basic), and the 401's reason says what digest needs (before: "basic authentication:
  the Authorization header does not verify" for any digest response).
- ``proxy-ssl-*`` (``proxy_ssl``): verify, name, SNI, protocols as the core's
  ``OpenUpstream.tls_config`` carries them; an unusable Secret's 503 said as such.
- ``proxy-http-version`` / ``connection-proxy-header`` (what the core sent upstream),
  ``enable-access-log`` (``access_log``), ``use-port-in-redirects`` (the Location's port).
- ``_tls_hosts._norm``: a Kelvin-sign SNI ``\\u212a.test`` no longer picks ``k.test``'s
  certificate (Unicode ``str.lower()`` folded it to ``k.test``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import trustme

import ingresslib
from ingresslib import Router, parse_manifests
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore
from ingresslib._tls_hosts import TLSHosts, tls_hosts
from ingresslib.proxy import OpenUpstream, Proxy, SendDownstream, SendUpstream
from tests.test_tls import _ingress as _tls_ingress
from tests.test_tls import _pems, _secret

P = "nginx.ingress.kubernetes.io/"

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
"""


def _ingress(annotations: dict[str, str], host: str = "a.test") -> str:
    ann = ", ".join(f"{k!r}: {v!r}" for k, v in annotations.items())
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
  namespace: default
  annotations: {{{ann}}}
spec:
  rules:
  - host: {host!r}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""


def _res(annotations: dict[str, str], extra: str = "") -> Any:
    return parse_manifests(_ingress(annotations) + _BACKENDS + extra)


def _core(res: Any, target: str = "/x", headers: str = "") -> tuple[Any, list[Any]]:
    conn = Proxy(Router(res, seed=0)).connection("10.1.1.1", now=0.0)
    head = f"GET {target} HTTP/1.1\r\nHost: a.test\r\n{headers}\r\n".encode()
    return conn, list(conn.receive_data(head, now=0.0))


def _answer(acts: list[Any]) -> bytes:
    return b"".join(a.data for a in acts if isinstance(a, SendDownstream))


# --- auth-type: digest -------------------------------------------------------------------------

_HA1 = hashlib.md5(b"alice:zone:pw").hexdigest()
_DIGEST_SECRET = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: users, namespace: default}}
stringData: {{auth: "alice:zone:{_HA1}"}}
"""
_DIGEST = {P + "auth-type": "digest", P + "auth-secret": "users", P + "auth-realm": "zone"}


def test_digest_auth_is_described_as_digest() -> None:
    res = _res(_DIGEST, _DIGEST_SECRET)
    doc = ingresslib.explain(res, "http://a.test/x")
    # Before: no "type": a digest location read as basic authentication.
    assert doc["access"]["basic_auth"]["type"] == "digest"
    v = doc["verdict"]
    assert v["status"] == 401 and v["reason"].startswith("digest authentication: no "
                                                         "Authorization header")
    assert v["www_authenticate"].startswith('Digest algorithm="MD5", qop="auth", realm="zone"')
    # The core's own answer: a digest challenge.
    _, acts = _core(res)
    out = _answer(acts)
    assert out.startswith(b"HTTP/1.1 401 ")
    assert b'www-authenticate: digest algorithm="md5"' in out.lower()


def test_digest_response_reason_says_what_digest_needs() -> None:
    res = _res(_DIGEST, _DIGEST_SECRET)
    auth = ('Digest username="alice", realm="zone", nonce="00", uri="/x", qop=auth, '
            'nc=00000001, cnonce="c", response="0123456789abcdef0123456789abcdef"')
    doc = ingresslib.explain(res, "http://a.test/x", headers=[("Authorization", auth)])
    v = doc["verdict"]
    # Before: "basic authentication: the Authorization header does not verify".
    assert v["status"] == 401
    assert v["reason"].startswith("digest authentication: a digest response answers a nonce "
                                  "the serving proxy issued"), v["reason"]
    assert "basic" not in v["reason"]
    _, acts = _core(res, headers=f"Authorization: {auth}\r\n")
    assert _answer(acts).startswith(b"HTTP/1.1 401 ")


def test_basic_auth_keeps_type_basic() -> None:
    secret = """
---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData: {auth: "alice:$apr1$x$y"}
"""
    doc = ingresslib.explain(_res({P + "auth-type": "basic", P + "auth-secret": "users"}, secret),
                             "http://a.test/x")
    assert doc["access"]["basic_auth"]["type"] == "basic"
    assert doc["verdict"]["reason"].startswith("basic authentication: no Authorization header")


# --- proxy-ssl-* -------------------------------------------------------------------------------

def _ca_secret(ca: trustme.CA) -> str:
    pem = ca.cert_pem.bytes().decode().replace("\n", "\\n")
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: backend-ca, namespace: default}}
stringData: {{ca.crt: "{pem}"}}
"""


_PSSL = {P + "backend-protocol": "HTTPS", P + "proxy-ssl-secret": "default/backend-ca",
         P + "proxy-ssl-verify": "on", P + "proxy-ssl-name": "web.internal",
         P + "proxy-ssl-server-name": "on", P + "proxy-ssl-protocols": "TLSv1.3"}


def test_proxy_ssl_as_the_core_opens_the_upstream() -> None:
    res = _res(_PSSL, _ca_secret(trustme.CA()))
    doc = ingresslib.explain(res, "http://a.test/x")
    p = doc["proxy_ssl"]
    _, acts = _core(res)
    op = next(a for a in acts if isinstance(a, OpenUpstream))
    cfg = op.tls_config
    assert op.tls and cfg is not None
    assert p["sent"] and p["usable"] and p["upstream_tls"] is True
    assert p["secret"] == "default/backend-ca" and p["problem"] is None
    assert (p["verify"], p["name"], p["sni"], p["protocols"], p["ca"], p["client_certificate"]
            ) == (cfg.verify, cfg.server_name, cfg.server_name, list(cfg.protocols), True,
                  False)
    assert (p["verify"], p["name"], p["protocols"]) == (True, "web.internal", ["TLSv1.3"])
    assert "proxy_ssl" not in ingresslib.explain(_res({}), "http://a.test/x")


def test_proxy_ssl_missing_secret_is_the_503_it_causes() -> None:
    res = _res(_PSSL)
    doc = ingresslib.explain(res, "http://a.test/x")
    p = doc["proxy_ssl"]
    assert not p["usable"] and "no such Secret" in p["problem"] and not p["sent"]
    assert doc["verdict"]["status"] == 503
    assert doc["verdict"]["reason"].startswith("proxy-ssl-secret default/backend-ca: no such "
                                               "Secret")
    _, acts = _core(res)
    assert _answer(acts).startswith(b"HTTP/1.1 503 ")


# --- proxy-http-version, connection-proxy-header, enable-access-log, use-port-in-redirects ---

def _sent_upstream(res: Any) -> bytes:
    conn, acts = _core(res)
    op = next(a for a in acts if isinstance(a, OpenUpstream))
    return b"".join(a.data for a in conn.upstream_connected(op.conn_id, now=0.0)
                    if isinstance(a, SendUpstream))


def test_proxy_http_version_and_connection_header_as_sent() -> None:
    res = _res({P + "proxy-http-version": "1.0", P + "connection-proxy-header": "close"})
    doc = ingresslib.explain(res, "http://a.test/x")
    sent = _sent_upstream(res)
    assert sent.startswith(b"GET /x HTTP/1.0\r\n") and b"\r\nconnection: close\r\n" in sent.lower()
    assert doc["proxy_http_version"] == {"version": "1.0", "request_line": "GET /x HTTP/1.0"}
    assert doc["connection_proxy_header"] == {"value": "close", "sent": "close"}
    plain = ingresslib.explain(_res({}), "http://a.test/x")
    assert "proxy_http_version" not in plain and "connection_proxy_header" not in plain


def test_enable_access_log_false() -> None:
    doc = ingresslib.explain(_res({P + "enable-access-log": "false"}), "http://a.test/x")
    assert doc["access_log"] is False
    assert "access_log" not in ingresslib.explain(_res({}), "http://a.test/x")


def test_use_port_in_redirects_location_carries_443() -> None:
    res = _res({P + "force-ssl-redirect": "true", P + "use-port-in-redirects": "true"})
    doc = ingresslib.explain(res, "http://a.test/x")
    _, acts = _core(res)
    out = _answer(acts)
    assert b"location: https://a.test:443/x\r\n" in out.lower()
    assert doc["verdict"]["location"] == "https://a.test:443/x"
    assert doc["use_port_in_redirects"] is True
    plain = ingresslib.explain(_res({P + "force-ssl-redirect": "true"}), "http://a.test/x")
    assert plain["verdict"]["location"] == "https://a.test/x"


# --- TLS host names: ASCII lower-casing ---------------------------------------------------------

def test_kelvin_sign_sni_is_not_k_test() -> None:
    kelvin = "\u212a.test"
    assert kelvin.lower() == "k.test"  # what Unicode's lower() folded it to
    assert not TLSHosts(exact=frozenset({"k.test"}))(kelvin)
    assert TLSHosts(exact=frozenset({"k.test"}))("K.TEST.")
    ca = trustme.CA()
    crt, key = _pems(ca.issue_cert("k.test"))
    res = Resources(ingresses=(_tls_ingress("w", [(("k.test",), "s")], rule_hosts=("k.test",)),),
                    secrets=(_secret("s", crt, key),))
    store = CertificateStore()
    assert store.update(res) == []
    assert store.context_for("K.test") is not store.default_context
    # Before: k.test's context.
    assert store.context_for(kelvin) is store.default_context
    assert not tls_hosts(res)(kelvin) and tls_hosts(res)("k.TEST")


# --- the controller ConfigMap's proxy-http-version and use-port-in-redirects --------------------

def test_configmap_proxy_http_version_and_use_port_in_redirects() -> None:
    import pytest

    from ingresslib._config import parse_config_data
    from ingresslib.proxy import ProxySettings

    got = parse_config_data({"proxy-http-version": "1.0", "use-port-in-redirects": "true"})
    # Before: both were "not implemented" keys, the settings had no such fields.
    assert got.settings.proxy_http_version == "1.0"
    assert got.settings.use_port_in_redirects is True
    assert not [w for w in got.warnings if "proxy-http-version" in str(w)
                or "use-port-in-redirects" in str(w)]
    plain = ProxySettings()
    assert (plain.proxy_http_version, plain.use_port_in_redirects) == ("1.1", False)
    with pytest.raises(Exception, match="proxy-http-version"):
        parse_config_data({"proxy-http-version": "2.0"})
    with pytest.raises(ValueError, match="proxy_http_version"):
        ProxySettings(proxy_http_version="2")
