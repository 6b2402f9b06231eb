"""Session 24's docs walk (D2): claims a new user reads, checked against the code.

- README's Layout names every module of the package (seven were missing: _explain_api,
  _kubeconfig, _fields, _json_manifests, _router_delta, _iptext, _spelling).
- README's `explain` synopsis shows every option of `ingresslib explain` (`-X` was missing).
- README's differences table has the annotation timeout bound (2147483 s) that the code applies.
- docs/cluster.md's `client=` note: a client the watcher is given keeps its own timeouts, a
  `cluster_client` gets the 65 s read timeout.
"""

from __future__ import annotations

import re
from pathlib import Path

import ingresslib
from ingresslib._cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLUSTER = (ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")


def _layout() -> str:
    start = README.index("## Layout")
    block = README[start:].split("```")[1]
    return block


def test_readme_layout_names_every_module() -> None:
    layout = _layout()
    named = set(re.findall(r"(_?\w+)\.(?:pyx|py)\b", layout))
    globs = [g.replace("*", "") for g in re.findall(r"(_\w+\*)\.py", layout)]
    missing = []
    for f in sorted((ROOT / "ingresslib").glob("*.py")) + sorted((ROOT / "ingresslib").glob("*.pyx")):
        stem = f.stem
        if stem in {"__main__"} or stem in named or any(stem.startswith(g) for g in globs):
            continue
        missing.append(f.name)
    assert missing == [], f"README Layout does not name: {missing}"


def test_readme_explain_synopsis_shows_every_option() -> None:
    (line,) = [ln for ln in README.splitlines() if ln.startswith("ingresslib explain -f ")]
    subs = next(a for a in build_parser()._actions if hasattr(a, "choices") and
                isinstance(a.choices, dict) and "explain" in a.choices)
    explain = subs.choices["explain"]
    # The class filter's two options are said once for check, explain and serve, below it.
    assert "`check`, `explain` and `serve` take `--ingress-class NAME` and `--controller NAME`" \
        in README
    common = ("-h", "--help", "--ingress-class", "--controller")
    for action in explain._actions:
        opts = [o for o in action.option_strings if o not in common]
        if opts:
            assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", line) for o in opts), opts


def test_readme_row_annotation_timeout_bound_matches_code() -> None:
    (row,) = [ln for ln in README.splitlines()
              if ln.startswith("| configuration |") and "past 2147483 seconds" in ln]
    assert "`proxy-read-timeout`" in row and "default" in row
    res = ingresslib.parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata: {name: web, namespace: shop, annotations: "
        "{nginx.ingress.kubernetes.io/proxy-read-timeout: \"2147484\", "
        "nginx.ingress.kubernetes.io/proxy-send-timeout: \"2147483\"}}\n"
        "spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n")
    warnings = [d for d in ingresslib.check(res) if d.severity == "warning"]
    (w,) = [d for d in warnings if "proxy-read-timeout" in d.field]
    assert "2147483" in str(w) and str(w).endswith("using the default 60")
    assert not [d for d in warnings if "proxy-send-timeout" in d.field]  # the bound itself is fine


def test_cluster_md_client_timeouts() -> None:
    from lightkube import AsyncClient
    from lightkube.config.kubeconfig import KubeConfig

    from ingresslib._kube import cluster_client

    assert "65 s between two reads" in CLUSTER
    assert "its timeouts stay as it was made" in CLUSTER and "10 s between two reads" in CLUSTER
    config = KubeConfig.from_dict({
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"})
    plain = AsyncClient(config=config)._client._client.timeout
    fitted = cluster_client(config)._client._client.timeout
    assert plain.read == 10.0
    assert (fitted.read, fitted.connect, fitted.write) == (65.0, 10.0, 10.0)
