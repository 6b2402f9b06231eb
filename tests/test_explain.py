"""``ingresslib explain`` and ``ingresslib check`` through ``main(argv)``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingresslib._cli import main
from ingresslib._explain import split_url

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: prod}
spec:
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /cart, pathType: Prefix, backend: {service: {name: cart, port: {name: http}}}}
      - {path: /, pathType: Exact, backend: {service: {name: home, port: {number: 8080}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop-canary, namespace: prod, annotations: {nginx.ingress.kubernetes.io/canary: "true"}}
spec:
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /cart, pathType: Prefix, backend: {service: {name: cart-v2, port: {number: 80}}}}
"""

BROKEN = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: Bad_Host
    http:
      paths:
      - {path: relative, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
      - {path: /x, pathType: Sometimes, backend: {service: {name: a, port: {number: 80}}}}
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    p = tmp_path / "shop.yaml"
    p.write_text(MANIFESTS)
    return p


def test_split_url() -> None:
    assert split_url("http://a.test:8080/x/%2e?q=1") == ("a.test:8080", "/x/%2e?q=1")
    assert split_url("a.test/x") == ("a.test", "/x")
    assert split_url("/only/path") == ("", "/only/path")
    assert split_url("https://a.test") == ("a.test", "/")


def test_explain_text(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-f", str(manifests), "http://SHOP.example.test/cart/%61dd"]) == 0
    out = capsys.readouterr().out
    assert "canonical '/cart/add'" in out
    assert "Ingress prod/shop, rule host shop.example.test, Prefix '/cart'" in out
    assert "backend service prod/cart:http" in out
    assert "canary: Ingress prod/shop-canary -> service prod/cart-v2:80" in out
    # No Service in these manifests: said plainly, not "port None".
    assert "target port unknown (Service prod/cart not found), endpoint none ready (503)" in out


def test_explain_says_why_a_named_target_port_is_unknown(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # The Service exists; its named targetPort is resolved through the endpoints that name it,
    # and there are none: "no such Service or port" would send the reader to the wrong place.
    f = tmp_path / "m.yaml"
    f.write_text("""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
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
spec: {ports: [{name: http, port: 80, targetPort: http}]}
""")
    assert main(["explain", "-f", str(f), "http://a.test/x"]) == 0
    out = capsys.readouterr().out
    assert ("target port unknown (a named targetPort, and no ready endpoint to name it), "
            "endpoint none ready (503)") in out
    assert main(["explain", "-f", str(f), "-o", "json", "http://a.test/x"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"]["why"] == (
        "Service default/web has no ready endpoint: no EndpointSlice labelled "
        "kubernetes.io/service-name=web (and no v1 Endpoints)")


def test_explain_json(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-f", str(manifests), "-o", "json", "shop.example.test/"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["match"]["service"] == "home" and info["match"]["path_type"] == "Exact"
    # The manifests have no Service or endpoints: the proxy would answer 503, and explain says so.
    assert info["status"] == 503 and info["decision"]["endpoint"] is None
    assert main(["explain", "-f", str(manifests), "-o", "json", "shop.example.test/nothing"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["match"]["is_default_backend"] and info["match"]["service"] == "fallback"


def test_explain_rejected_and_unrouted(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-f", str(manifests), "-o", "json", "shop.example.test/a/../../etc"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == 400 and info["match"] is None and info["reason"].startswith("rejected")
    assert main(["explain", "-f", str(manifests), "other.test/x"]) == 0
    out = capsys.readouterr().out
    # The default backend is the cluster-wide fallback for hosts no rule names.
    assert "default backend of Ingress prod/shop" in out


def test_check_ok(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(manifests)]) == 0
    assert capsys.readouterr().out.startswith("ok: 2 Ingress(es), 2 served")


def test_check_reports_every_error(tmp_path: Path, manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    assert main(["check", "-f", str(manifests), "-f", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    problems = [line for line in err if "Ingress default/bad" in line]
    assert any("spec.rules[0].host" in line for line in problems)
    assert any("spec.rules[0].http.paths[0].path" in line for line in problems)
    assert any("spec.rules[0].http.paths[1].pathType" in line and "Unsupported value" in line for line in problems)
    assert err[-1] == f"{len(problems)} error(s)"


def test_python_dash_m(manifests: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ingresslib", "check", "-f", str(manifests)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok:")


ENDPOINTS = """
---
apiVersion: v1
kind: Service
metadata: {name: home, namespace: prod}
spec: {ports: [{name: http, port: 8080, targetPort: 9000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: home-1, namespace: prod, labels: {kubernetes.io/service-name: home}}
addressType: IPv4
ports: [{name: http, port: 9000}]
endpoints:
- {addresses: [10.1.0.5], conditions: {ready: true}}
- {addresses: [10.1.0.6], conditions: {ready: false}}
"""


def test_explain_shows_the_endpoint_the_router_picks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "all.yaml"
    p.write_text(MANIFESTS + ENDPOINTS)
    assert main(["explain", "-f", str(p), "-o", "json", "shop.example.test/"]) == 0
    info = json.loads(capsys.readouterr().out)
    # Port 8080 resolves through the Service to target port 9000; only the ready pod is chosen.
    assert info["status"] == 200
    assert info["decision"] == {"service": "home", "namespace": "prod", "port": 9000,
                                "endpoint": "10.1.0.5:9000", "canary": False}
    assert main(["explain", "-f", str(p), "shop.example.test/"]) == 0
    assert "router picks main prod/home target port 9000, endpoint 10.1.0.5:9000" in capsys.readouterr().out
