"""Session 28, the lead's own fixes (each test failed on the tree before its fix)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxyServer, ProxySettings

ROOT = Path(__file__).resolve().parent.parent

_YAML = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def test_reject_handshake_without_a_store_that_knows_the_hosts_is_refused_at_start() -> None:
    # Before: the server made a CertificateStore of its own that nothing ever updated, so
    # ssl-reject-handshake refused every name, a.test included, at each handshake.
    async def main() -> None:
        server = ProxyServer(Router(parse_manifests(_YAML)),
                             settings=ProxySettings(ssl_reject_handshake=True))
        with pytest.raises(ValueError, match="ssl_reject_handshake needs a cert_store"):
            await server.start(("127.0.0.1", 0), tls_listen=("127.0.0.1", 0))
        assert server.servers == []          # nothing bound before the refusal
        await server.shutdown(0.1)

    asyncio.run(main())


def test_proxy_settings_of_the_core_load_no_ssl() -> None:
    # Before: proxy/_settings.py imported _tls_settings, which imported ssl at module level:
    # the sans-IO core (``import ingresslib.proxy`` and ProxySettings()) loaded ssl.
    code = ("import sys\nfrom ingresslib.proxy import ProxySettings\n"
            "ProxySettings(); ProxySettings(use_gzip=True)\nprint('ssl' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT))
    assert out.stdout == "False\n", out.stderr


_DEFAULT_BACKEND = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {nginx.ingress.kubernetes.io/default-backend: "\\u3000fallback"}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: fallback}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: fallback}
subsets: [{addresses: [{ip: 10.0.0.9}], ports: [{port: 8080}]}]
"""


def test_default_backend_name_is_trimmed_as_go_trims_it() -> None:
    # defaultbackend/main.go reads the value with GetStringAnnotation (strings.TrimSpace per
    # line: U+3000 is Go white space). Before: only ASCII white space was trimmed, and the
    # Router (and explain) said "Service default/\u3000fallback not found; ignored".
    from ingresslib._endpoints import EndpointIndex, custom_default_backend

    res = parse_manifests(_DEFAULT_BACKEND)
    eps, port, why = custom_default_backend(EndpointIndex(res), "default", "\u3000fallback")
    assert (why, port) == (None, 80) and eps


def test_mirror_target_keeps_what_go_keeps() -> None:
    # mirror/main.go: TrimSpace, then the validator's regex: a U+001C at the start stays and
    # is refused. Before: str.strip() removed it and the mirror was set.
    from ingresslib.proxy._mirror import _parse_host, _parse_target

    with pytest.raises(ValueError):
        _parse_target("\x1chttp://m.test/")
    with pytest.raises(ValueError):
        _parse_host("\x1cm.test")
    assert _parse_target("\u3000http://m.test/x ")[1] == "m.test"


def test_check_reports_the_cipher_annotations_the_store_refuses() -> None:
    # Before: ``check`` said "ok" with no warning while ``serve`` logged the refusal (the
    # store's reading) and served the ConfigMap's ciphers instead.
    import ingresslib

    res = parse_manifests(_YAML.replace(
        "metadata: {name: web}",
        "metadata:\n  name: web\n  annotations:\n"
        "    nginx.ingress.kubernetes.io/ssl-ciphers: NOT-A-CIPHER\n"
        "    nginx.ingress.kubernetes.io/ssl-prefer-server-ciphers: maybe"))
    said = [str(d) for d in ingresslib.check(res)]
    assert any("ssl-ciphers" in s and "NOT-A-CIPHER" in s for s in said), said
    assert any("ssl-prefer-server-ciphers" in s and "'maybe'" in s for s in said), said
    good = parse_manifests(_YAML.replace(
        "metadata: {name: web}",
        "metadata:\n  name: web\n  annotations:\n"
        "    nginx.ingress.kubernetes.io/ssl-ciphers: ECDHE-RSA-AES128-GCM-SHA256"))
    assert not [str(d) for d in ingresslib.check(good) if "ssl-" in str(d)]


def test_request_buffering_limit_zero_is_refused() -> None:
    # Before: accepted, and every non-empty chunked body was 413 on its first byte with
    # proxy-request-buffering on, while Content-Length bodies streamed.
    with pytest.raises(ValueError, match="request_buffering_limit"):
        ProxySettings(request_buffering_limit=0)
    assert ProxySettings(request_buffering_limit=1).request_buffering_limit == 1
