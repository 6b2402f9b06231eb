"""Seams between session 19's landings (V19z): where one landing changed one side of an
agreement and another landing the other side.

- 5319576 reports a ``canary-by-header-pattern`` that cannot compile as PCRE runs it on the
  header's bytes (``\\u``/``\\U``): every request the proxy sees stays on the main side. The
  warning reached ``check`` and ``serve``'s log, but ``explain``, which re-parses the canary's
  annotations to say when the canary serves, dropped parse_canary's warnings and said "serves
  on header x-c matching '\\\\u00e9'" with nothing to tell the reader that it never does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingresslib._cli import main

_MANIFESTS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: main, namespace: default}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: can
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: "X-C"
    nginx.ingress.kubernetes.io/canary-by-header-pattern: '%s'
spec:
  rules:
  - host: a.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web2, port: {number: 80}}}
"""


def _explain(tmp_path: Path, pattern: str, capsys: pytest.CaptureFixture[str],
             *extra: str) -> tuple[int, str]:
    path = tmp_path / "m.yaml"
    path.write_text(_MANIFESTS % pattern, encoding="utf-8")
    capsys.readouterr()
    code = main(["explain", "-f", str(path), *extra, "a.test/"])
    return code, capsys.readouterr().out


def test_explain_says_a_byte_form_pattern_never_serves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Fails before: the line "serves on header x-c matching '\\u00e9'" and nothing else.
    code, out = _explain(tmp_path, r"\u00e9", capsys)
    assert code == 0
    assert "serves on header x-c matching" in out
    assert ("warning: canary-by-header-pattern: '\\\\u00e9' does not compile as PCRE runs it"
            " on the header's bytes") in out, out
    code, out = _explain(tmp_path, r"\u00e9", capsys, "-o", "json")
    rules = json.loads(out)["match"]["canary"]["rules"]
    assert any("does not compile as PCRE" in w for w in rules["warnings"]), rules


def test_explain_adds_no_canary_warning_for_a_good_pattern(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(tmp_path, "^beta$", capsys, "-o", "json")
    assert code == 0
    assert json.loads(out)["match"]["canary"]["rules"] == {
        "header": "x-c", "header_pattern": "^beta$", "weight": 0, "weight_total": 100}
