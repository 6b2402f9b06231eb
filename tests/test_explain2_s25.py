"""Session 25 (EX2): ``explain`` catches up with round 3, each statement checked against the
proxy core (``Proxy.connection``) for the same request:

- a host's path no rule covers: its server ``location /`` (the host's oldest Ingress's
  annotations) gives CORS (the preflight's 204, the headers on the 404), rate limits and
  custom-headers (``proxy/_actions.py`` ``unrouted_limit``, ``unrouted_headers``);
- the controller ConfigMap's ``add-headers`` (on the answer), ``proxy-set-headers`` (sent
  upstream) and ``hide-headers`` (``"config_headers"``).
"""

from __future__ import annotations

from typing import Any

import ingresslib
from ingresslib import parse_manifests
from ingresslib._explain import render_text
from ingresslib.proxy import ProxySettings

from test_explain_s25 import Core, _service

P = "nginx.ingress.kubernetes.io/"
CORS = {P + "enable-cors": "true", P + "cors-allow-origin": "https://app.example"}
HDRS = {P + "custom-headers": "default/hdrs"}


def _config_map(name: str, data: dict[str, str]) -> str:
    body = ", ".join(f"{k!r}: {v!r}" for k, v in data.items())
    return f"""
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data: {{{body}}}
"""


def _docs(annotations: dict[str, str], extra: str = "") -> str:
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
  - host: a.test
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
""" + _service("web", 80, 8080, ("10.0.0.1",)) + extra


def explain(docs: str, method: str = "GET", target: str = "/other",
            headers: tuple[tuple[str, str], ...] = (),
            settings_: ProxySettings | None = None) -> dict[str, Any]:
    return ingresslib.explain(parse_manifests(docs), "http://a.test" + target, method=method,
                              headers=headers, client_ip="203.0.113.9", settings=settings_)


def _lower(d: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in d.items()}


# --- (a) a path no rule covers: the server's location / ---------------------------------------


def test_unrouted_preflight_is_said_as_the_core_answers_it() -> None:
    docs = _docs(CORS)
    hdrs = (("Origin", "https://app.example"),)
    doc = explain(docs, "OPTIONS", headers=hdrs)
    core = Core(docs, "OPTIONS", target="/other", headers=hdrs)
    assert core.status == doc["status"] == 204
    assert doc["verdict"]["reason"].startswith("answered 204 by the CORS preflight")
    assert doc["cors"]["preflight"] is True and doc["server_location"] is True
    assert _lower(doc["cors"]["headers"]) == core.cors() != {}
    text = render_text(doc)
    assert "server location /" in text and "answered 204 by the CORS preflight" in text


def test_unrouted_404_carries_the_cors_headers() -> None:
    docs = _docs(CORS)
    hdrs = (("Origin", "https://app.example"),)
    doc = explain(docs, headers=hdrs)
    core = Core(docs, target="/other", headers=hdrs)
    assert core.status == doc["status"] == 404
    assert doc["cors"]["preflight"] is False
    assert _lower(doc["cors"]["headers"]) == core.cors()
    assert core.cors()["access-control-allow-origin"] == "https://app.example"
    assert "the answer gets Access-Control-Allow-Origin: https://app.example" in render_text(doc)


def test_unrouted_rate_limits_are_said() -> None:
    docs = _docs({P + "limit-rps": "1"})
    doc = explain(docs)
    assert doc["status"] == 404
    r = doc["rate_limit"]
    assert r["ingress"] == "default/site" and r["rps"] == 1 and r["limited"] is True
    # The core does count it in the Ingress's zone: past the burst, the path no rule covers
    # is refused with limit-req-status-code.
    statuses = []
    core = Core(docs, target="/other")
    statuses.append(core.status)
    for _ in range(8):
        statuses.append(Core(docs, target="/other", proxy=core.proxy).status)
    assert statuses[0] == 404 and r["status_rate"] in statuses
    assert "rate limits of Ingress default/site" in render_text(doc)


def test_unrouted_denied_location_has_no_limits() -> None:
    # A denied location's 503 comes first (``unrouted_limit`` gives none).
    docs = _docs({P + "limit-rps": "1", P + "whitelist-source-range": "not-a-cidr"})
    doc = explain(docs)
    core = Core(docs, target="/other")
    assert core.status == doc["status"] == 503
    assert "rate_limit" not in doc


def test_unrouted_custom_headers_are_the_cores() -> None:
    docs = _docs({**HDRS, P + "enable-cors": "false"}, _config_map("hdrs", {"X-Site": "main"}))
    settings_ = ProxySettings(global_allowed_response_headers=("X-Site",))
    doc = explain(docs, settings_=settings_)
    core = Core(docs, target="/other", settings_=settings_)
    assert core.status == doc["status"] == 404
    assert core.get("x-site") == ["main"]
    assert doc["custom_headers"] == {"config_map": "default/hdrs", "headers": {"X-Site": "main"}}
    assert "custom-headers (ConfigMap default/hdrs): the answer gets X-Site: main" \
        in render_text(doc)


def test_unknown_host_has_no_server_location() -> None:
    docs = _docs(CORS)
    doc = ingresslib.explain(parse_manifests(docs), "http://b.test/other",
                             headers=(("Origin", "https://app.example"),), client_ip="203.0.113.9")
    assert doc["status"] == 404 and "cors" not in doc and "server_location" not in doc


def test_routed_custom_headers_are_said_too() -> None:
    docs = _docs(HDRS, _config_map("hdrs", {"X-Site": "main"}))
    settings_ = ProxySettings(global_allowed_response_headers=("X-Site",))
    doc = explain(docs, target="/api", settings_=settings_)
    core = Core(docs, target="/api", settings_=settings_)
    assert core.endpoint is not None and doc["verdict"]["proxied"]
    assert core.get("x-site") == ["main"]
    assert doc["custom_headers"]["headers"] == {"X-Site": "main"}


# --- (b) the controller ConfigMap's add-headers / proxy-set-headers / hide-headers -------------


def test_config_headers_are_the_cores() -> None:
    docs = _docs({}, _config_map("add", {"X-Add": "yes"}) + _config_map("up", {"X-Up": "1"}))
    settings_ = ProxySettings(add_headers="default/add", proxy_set_headers="default/up",
                              hide_headers=("X-Powered-By",))
    doc = explain(docs, target="/api", settings_=settings_)
    core = Core(docs, target="/api", settings_=settings_,
                reply=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Powered-By: php\r\n\r\n")
    assert core.endpoint is not None and doc["verdict"]["proxied"]
    assert core.get("x-add") == ["yes"] and core.upstream.get("x-up") == "1"
    assert core.get("x-powered-by") == []
    ch = doc["config_headers"]
    assert ch["add_headers"] == {"config_map": "default/add", "headers": {"X-Add": "yes"}}
    assert ch["proxy_set_headers"] == {"config_map": "default/up", "headers": {"X-Up": "1"}}
    assert ch["hide_headers"] == ["X-Powered-By"]
    text = render_text(doc)
    assert "add-headers (ConfigMap default/add): the answer gets X-Add: yes" in text
    assert "proxy-set-headers (ConfigMap default/up): the endpoint gets X-Up: 1" in text
    assert "hide-headers: the upstream's X-Powered-By dropped" in text


def test_add_headers_on_the_proxys_own_404() -> None:
    docs = _docs({}, _config_map("add", {"X-Add": "yes"}))
    settings_ = ProxySettings(add_headers="default/add", proxy_set_headers="default/up")
    doc = explain(docs, settings_=settings_)
    core = Core(docs, target="/other", settings_=settings_)
    assert core.status == doc["status"] == 404 and core.get("x-add") == ["yes"]
    ch = doc["config_headers"]
    assert ch["add_headers"]["headers"] == {"X-Add": "yes"}
    # A missing ConfigMap: nothing sent (and the 404 is not proxied at all).
    assert ch["proxy_set_headers"] == {"config_map": "default/up", "headers": None}
    assert "not proxied: nothing sent upstream" in render_text(doc)


def test_no_config_headers_without_the_keys() -> None:
    doc = explain(_docs({}), target="/api")
    assert "config_headers" not in doc and "custom_headers" not in doc


# --- (c) custom-http-errors: the statuses the default-backend Service answers -------------------

ERR = {P + "default-backend": "errors", P + "custom-http-errors": "404,503"}


def _error_docs(annotations: dict[str, str], errors: tuple[str, ...] = ("10.0.0.7",)) -> str:
    from test_explain_s25 import _docs as docs_with_errors

    return docs_with_errors(annotations, errors=errors)


def test_intercepted_statuses_are_the_cores() -> None:
    docs = _error_docs(ERR)
    doc = ingresslib.explain(parse_manifests(docs), "http://a.test/x", client_ip="203.0.113.9")
    assert doc["verdict"]["proxied"]
    db = doc["default_backend"]
    assert db["used"] is False and db["intercepts"] == [404, 503]
    assert db["reason"].startswith("not used for this answer: ")
    assert "an upstream answer 404, 503 is answered by it instead (endpoint 10.0.0.7:9090)" \
        in db["reason"]
    # The core: an upstream 404 is answered by the Service's endpoint; a 500 passes.
    core = Core(docs, reply=b"HTTP/1.1 404 N\r\nContent-Length: 0\r\n\r\n", finish=False)
    assert core.endpoint == ("10.0.0.1", 8080)
    up = [a for a in core.conn.upstream_data(1, b"HTTP/1.1 404 N\r\nContent-Length: 0\r\n\r\n",
                                             0.0) if type(a).__name__ == "OpenUpstream"]
    assert [a.endpoint for a in up] == [("10.0.0.7", 9090)]
    assert "custom-http-errors: an upstream answer 404, 503" in render_text(doc)


def test_disabled_interception_intercepts_nothing() -> None:
    docs = _error_docs({**ERR, P + "disable-proxy-intercept-errors": "true"})
    doc = ingresslib.explain(parse_manifests(docs), "http://a.test/x", client_ip="203.0.113.9")
    db = doc["default_backend"]
    assert db["intercepts"] == []
    assert db["reason"].startswith("not used: ")
    assert "the proxy intercepts none of 404, 503" in db["reason"]


def test_no_custom_http_errors_no_intercepts() -> None:
    docs = _error_docs({P + "default-backend": "errors"})
    doc = ingresslib.explain(parse_manifests(docs), "http://a.test/x", client_ip="203.0.113.9")
    assert doc["default_backend"]["intercepts"] == []
    assert "custom-http-errors" not in doc["default_backend"]["reason"]


# --- (d) the matched rule's path stands for another path ----------------------------------------


def _path_docs(path: str, path_type: str) -> str:
    return _docs({}).replace("{path: /api, pathType: Prefix,",
                             f"{{path: {path!r}, pathType: {path_type},")


def test_a_rule_path_standing_for_another_is_noted_as_check_notes_it() -> None:
    docs = _path_docs("/a//b", "ImplementationSpecific")
    res = parse_manifests(docs)
    doc = ingresslib.explain(res, "http://a.test/a/b", client_ip="203.0.113.9")
    core = Core(docs, target="/a/b")
    assert core.endpoint == ("10.0.0.1", 8080) and doc["verdict"]["proxied"]
    note = doc["path_note"]
    assert "'/a//b' on host a.test matches as ImplementationSpecific '/a/b'" in note
    assert any(note in str(d) for d in ingresslib.RouteTable.build(res).diagnostics)
    assert f"warning: {note}" in render_text(doc)


def test_a_path_as_written_has_no_note() -> None:
    doc = explain(_docs({}), target="/api")
    assert "path_note" not in doc
