"""Session 35 (x41): ``explain`` says what the backend receives after a ``rewrite-target``
(``"rewrite"``: the target, whether it applies, the upstream request target and the
X-Forwarded-Prefix), with or without a ready endpoint, computed by the proxy's own
``RouteOptions.rewrite_uri``; with an endpoint it is checked against the request line the
proxy core sent (``ask_proxy``)."""

from __future__ import annotations

from typing import Any

import ingresslib
from ingresslib import parse_manifests
from ingresslib._explain import render_text
from ingresslib._explain_verdict import ask_proxy
from ingresslib._router import Router

from _proxy_harness import WEB_SERVICE_YAML

P = "nginx.ingress.kubernetes.io/"



def _docs(path: str, annotations: dict[str, str], *, endpoints: bool,
          path_type: str = "Prefix") -> str:
    ann = ", ".join(f"{k!r}: {v!r}" for k, v in annotations.items())
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: rw, namespace: default, annotations: {{{ann}}}}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: '{path}', pathType: {path_type}, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
""" + (WEB_SERVICE_YAML if endpoints else "")


def _explain(docs: str, target: str) -> dict[str, Any]:
    return ingresslib.explain(parse_manifests(docs), "http://a.test" + target)


def _sent_target(docs: str, target: str) -> str:
    """The request target of the request line the proxy core sends the endpoint."""
    router = Router(parse_manifests(docs), seed=0)
    answer = ask_proxy(router, None, method="GET", host="a.test", target=target, headers=(),
                       peer="192.0.2.1")
    assert answer is not None and answer.upstream_request_line is not None
    return answer.upstream_request_line.split(" ")[1]


CAPTURE = {P + "rewrite-target": "/v2/$1", P + "use-regex": "true"}
#: ingresslib routes a regex rule path as a literal prefix (README's divergence table, "use-regex"),
#: the regex only computing the rewrite: a request the rule routes starts with "/(.*)".
CAPTURE_PATH = "/(.*)"


def test_the_brief_case_without_endpoints_json_and_text() -> None:
    # /tmp/rw/m3.yaml: no Service in the files, so the core sends nothing; the route's
    # options still say what the backend would receive.
    doc = _explain(_docs("/api", {P + "rewrite-target": "/v2"}, endpoints=False),
                   "/api/users?x=1")
    assert doc["status"] == 503
    assert doc["rewrite"] == {"target": "/v2", "applies": True, "redirect": False,
                              "upstream_uri": "/v2?x=1", "sent": False}
    text = render_text(doc)
    assert "rewrite-target '/v2': the backend would receive '/v2?x=1'" in text


def test_with_an_endpoint_it_is_the_request_line_the_core_sends() -> None:
    docs = _docs("/api", {P + "rewrite-target": "/v2"}, endpoints=True)
    doc = _explain(docs, "/api/users?x=1")
    assert doc["verdict"]["proxied"] is True
    assert doc["rewrite"]["upstream_uri"] == "/v2?x=1" == _sent_target(docs, "/api/users?x=1")
    assert doc["rewrite"]["sent"] is True
    assert "rewrite-target '/v2': the backend receives '/v2?x=1'" in render_text(doc)


def test_a_capture_and_a_query() -> None:
    for endpoints in (False, True):
        docs = _docs(CAPTURE_PATH, CAPTURE, endpoints=endpoints, path_type="ImplementationSpecific")
        doc = _explain(docs, "/(.*)/users/7?a=1&b=2")
        assert doc["rewrite"]["upstream_uri"] == "/v2/(.*)/users/7?a=1&b=2"
        assert doc["rewrite"]["applies"] is True
        if endpoints:
            assert _sent_target(docs, "/(.*)/users/7?a=1&b=2") == "/v2/(.*)/users/7?a=1&b=2"


def test_a_percent_25_in_a_capture_is_sent_as_the_core_sends_it() -> None:
    docs = _docs(CAPTURE_PATH, CAPTURE, endpoints=True, path_type="ImplementationSpecific")
    target = "/(.*)/a%25b?q=%25"
    doc = _explain(docs, target)
    assert doc["rewrite"]["upstream_uri"] == _sent_target(docs, target) == "/v2/(.*)/a%25b?q=%25"
    # And without an endpoint, the same answer from the route's options.
    docs = _docs(CAPTURE_PATH, CAPTURE, endpoints=False, path_type="ImplementationSpecific")
    assert _explain(docs, target)["rewrite"]["upstream_uri"] == "/v2/(.*)/a%25b?q=%25"


def test_a_target_ending_in_a_question_mark_drops_the_query() -> None:
    doc = _explain(_docs("/api", {P + "rewrite-target": "/v2?"}, endpoints=False),
                   "/api/x?secret=1")
    assert doc["rewrite"]["upstream_uri"] == "/v2"


def test_x_forwarded_prefix_is_said() -> None:
    docs = _docs("/api", {P + "rewrite-target": "/v2", P + "x-forwarded-prefix": "/api"},
                 endpoints=True)
    doc = _explain(docs, "/api/users")
    assert doc["rewrite"]["x_forwarded_prefix"] == "/api"
    assert "X-Forwarded-Prefix: /api" in render_text(doc)


def test_a_target_that_does_not_apply_sends_the_path_unchanged() -> None:
    # Prefix /api/ routes /api (Kubernetes' Prefix ignores the trailing "/"); the rewrite's
    # regex "(?i)/api/" does not match it: nginx's rewrite does nothing.
    for endpoints in (False, True):
        docs = _docs("/api/", {P + "rewrite-target": "/v2"}, endpoints=endpoints)
        doc = _explain(docs, "/api?x=1")
        assert doc["rewrite"]["applies"] is False
        assert doc["rewrite"]["upstream_uri"] == "/api?x=1"
        assert "does not apply" in render_text(doc)
        if endpoints:
            assert _sent_target(docs, "/api?x=1") == "/api?x=1"


def test_a_url_target_is_the_verdicts_redirect() -> None:
    doc = _explain(_docs("/api", {P + "rewrite-target": "https://b.test/x"}, endpoints=True),
                   "/api/q?x=1")
    assert doc["verdict"]["status"] == 302
    assert doc["verdict"]["location"] == "https://b.test/x?x=1"
    assert doc["rewrite"]["redirect"] is True and doc["rewrite"]["upstream_uri"] is None
    text = render_text(doc)
    assert "302 (redirect to https://b.test/x?x=1)" in text
    assert "rewrite-target 'https://b.test/x': a redirect" in text


def test_no_rewrite_no_key() -> None:
    doc = _explain(_docs("/api", {}, endpoints=True), "/api/users")
    assert "rewrite" not in doc
    assert "rewrite-target" not in render_text(doc)


def test_a_percent_in_the_target_as_the_core_sends_it() -> None:
    # nginx re-escapes the rewritten $uri's "%": /x%20y goes up as /x%2520y (README's
    # rewrite-target row); explain says what the core sends, not the target as written.
    docs = _docs("/api", {P + "rewrite-target": "/x%20y"}, endpoints=True)
    doc = _explain(docs, "/api/z?a=%25")
    assert doc["rewrite"]["upstream_uri"] == _sent_target(docs, "/api/z?a=%25")
    assert doc["rewrite"]["upstream_uri"].startswith("/x%2520y")


def test_cli_json_and_text(tmp_path: Any, capsys: Any) -> None:
    from ingresslib._cli import main
    m = tmp_path / "m.yaml"
    m.write_text(_docs("/api", {P + "rewrite-target": "/v2"}, endpoints=False))
    assert main(["explain", "-f", str(m), "http://a.test/api/users?x=1"]) == 0
    assert "the backend would receive '/v2?x=1'" in capsys.readouterr().out
    assert main(["explain", "-f", str(m), "-o", "json", "http://a.test/api/users?x=1"]) == 0
    assert '"upstream_uri": "/v2?x=1"' in capsys.readouterr().out


# -- serve --kubeconfig: the error names the file; an auth-provider user says what to use ------

def _auth_provider_kubeconfig(tmp_path: Any, provider: str) -> str:
    import json

    from tests._fake_kube import kubeconfig_dict
    conf = kubeconfig_dict("http://127.0.0.1:9")
    conf["users"][0]["user"] = {"auth-provider": {"name": provider, "config": {}}}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(conf))
    return str(path)


def test_serve_names_the_kubeconfig_it_cannot_use(tmp_path: Any, capsys: Any) -> None:
    from ingresslib._cli import main
    path = _auth_provider_kubeconfig(tmp_path, "gcp")
    assert main(["serve", "--kubernetes", "--kubeconfig", path, "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert f"--kubeconfig {path}: cannot use the cluster configuration" in err
    assert "listening on" not in err


def test_an_auth_provider_user_is_told_what_to_use_instead(tmp_path: Any) -> None:
    import pytest
    from lightkube.core.exceptions import ConfigError

    from ingresslib._kube import cluster_client, load_kube_config
    for provider, plugin in (("gcp", "gke-gcloud-auth-plugin"), ("azure", "kubelogin"),
                             ("oidc", "kubelogin")):
        config = load_kube_config(_auth_provider_kubeconfig(tmp_path, provider))
        with pytest.raises(ConfigError) as e:
            cluster_client(config)
        said = str(e.value)
        assert f'the {provider} auth-provider' in said and plugin in said and "exec" in said
        assert 'user "nobody"' in said
