"""Shared pieces of the ``ingresslib explain`` tests of session 14: the backend and the basic-auth
Secret their manifests share (namespace ``prod``), and explain run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingresslib._cli import main

def prod_ingress(name: str, host: str | None, annotations: str, path: str = "/",
                 service: str = "web") -> str:
    """A "---"-led Ingress ``name`` in ``prod``, ``annotations`` as its YAML flow mapping: one
    rule (for ``host``; None: a host-less rule), ``path`` (Prefix) to ``service`` port 80."""
    rule_host = "" if host is None else f"host: {host}\n    "
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: prod, annotations: {annotations}}}
spec:
  rules:
  - {rule_host}http:
      paths:
      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
"""


#: Service ``web`` (port 80 to 8080) in ``prod``, and its EndpointSlice: one endpoint, 127.0.0.1.
WEB = """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
spec:
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: prod, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["127.0.0.1"]}]
ports: [{port: 8080}]
"""


def users_secret(password_hash: str) -> str:
    """Secret ``users`` in ``prod``, the htpasswd file of one user, alice (``password_hash``)."""
    return f"""---
apiVersion: v1
kind: Secret
metadata: {{name: users, namespace: prod}}
stringData:
  auth: "alice:{password_hash}"
"""


def explain_json(capsys: pytest.CaptureFixture[str], files: Path, *args: str) -> dict[str, Any]:
    """``ingresslib explain -f files -o json args...`` (exit 0): its document."""
    assert main(["explain", "-f", str(files), "-o", "json", *args]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def explain_text(capsys: pytest.CaptureFixture[str], files: Path, *args: str) -> str:
    """``ingresslib explain -f files args...`` (exit 0): its text."""
    assert main(["explain", "-f", str(files), *args]) == 0
    return capsys.readouterr().out
