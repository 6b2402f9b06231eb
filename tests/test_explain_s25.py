"""Session 25 (EX): ``explain`` says what the proxy does with this session's annotations, and
every statement is checked against the proxy core (``Proxy.connection``) for the same request
(and, for CORS, against ``IngressASGI``):

- CORS (``enable-cors``, ``cors-*``): "answered 204 by the CORS preflight" for an OPTIONS
  request with an allowed Origin, the Access-Control-* headers of the answer; nothing for an
  Origin the location does not allow (``"cors"``).
- rate limits (``limit-rps``, ``limit-rpm``, ``limit-connections``,
  ``limit-burst-multiplier``, ``limit-allowlist``; ConfigMap ``limit-req-status-code`` /
  ``limit-conn-status-code``): the Ingress's limits, bursts, allowlist and whether the client
  is in it, the refusal statuses (``"rate_limit"``): said, not simulated.
- ``upstream-vhost`` (``"upstream_vhost"``, ``verdict.upstream_host``), ``proxy-redirect-*``
  and ``proxy-cookie-*`` (``"response_rewrite"``).
- ``default-backend`` (``"default_backend"``, ``decision.default_backend``): served by the
  annotation's Service (X-Code: 503) when the rule's Service has no ready endpoint; else why
  not.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingresslib
from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._cli import main as cli_main
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream, SendUpstream

from _budget import examples

P = "nginx.ingress.kubernetes.io/"
CORS = {P + "enable-cors": "true",
        P + "cors-allow-origin": "https://app.example, https://*.example.org:8443"}


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
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""


def _service(name: str, port: int, target: int, endpoints: tuple[str, ...]) -> str:
    doc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: {target}}}]}}
"""
    if endpoints:
        eps = ", ".join(f"{{addresses: [{a}], conditions: {{ready: true}}}}" for a in endpoints)
        doc += f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {target}}}]
endpoints: [{eps}]
"""
    return doc


def _docs(annotations: dict[str, str], web: tuple[str, ...] = ("10.0.0.1",),
          errors: tuple[str, ...] | None = None) -> str:
    docs = _ingress(annotations) + _service("web", 80, 8080, web)
    if errors is not None:
        docs += _service("errors", 8081, 9090, errors)
    return docs


class Core:
    """The proxy core's handling of one request: the status and head the client gets (for a
    proxied request, over an upstream answering ``reply``), the endpoint and the head the
    endpoint gets."""

    def __init__(self, docs: str, method: str = "GET", target: str = "/x",
                 host: str = "a.test", headers: tuple[tuple[str, str], ...] = (),
                 peer: str = "203.0.113.9", settings_: ProxySettings | None = None,
                 reply: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                 proxy: Proxy | None = None, finish: bool = True) -> None:
        self.proxy = proxy if proxy is not None else Proxy(
            Router(parse_manifests(docs), seed=0), settings_, clock=None,
            request_id=lambda: "0" * 32)
        self.conn = self.proxy.connection((peer, 40000), now=0.0)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}",
                 *(f"{n}: {v}" for n, v in headers)]
        acts = self.conn.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode(), 0.0)
        self.endpoint: tuple[str, int] | None = None
        self.upstream: dict[str, str] = {}
        out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
        opens = [a for a in acts if isinstance(a, OpenUpstream)]
        if opens and not out:
            up = opens[0]
            self.endpoint = up.endpoint
            sent = b"".join(a.data for a in self.conn.upstream_connected(up.conn_id, 0.0)
                            if isinstance(a, SendUpstream))
            self.upstream = dict(_fields(sent))
            if finish:
                out = b"".join(a.data for a in self.conn.upstream_data(up.conn_id, reply, 0.0)
                               if isinstance(a, SendDownstream))
        self.status = int(out.split(b" ", 2)[1]) if out else 0
        self.head = _fields(out) if out else []

    def cors(self) -> dict[str, str]:
        return {n: v for n, v in self.head if n.startswith("access-control-")}

    def get(self, name: str) -> list[str]:
        return [v for n, v in self.head if n == name]


def _fields(data: bytes) -> list[tuple[str, str]]:
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [(n.strip().lower().decode(), v.strip().decode("latin-1"))
            for n, _, v in (ln.partition(b":") for ln in lines)]


def explain(docs: str, method: str = "GET", target: str = "/x",
            headers: tuple[tuple[str, str], ...] = (), client_ip: str | None = "203.0.113.9",
            settings_: ProxySettings | None = None) -> dict[str, Any]:
    return ingresslib.explain(parse_manifests(docs), "http://a.test" + target, method=method,
                              headers=headers, client_ip=client_ip, settings=settings_)


def _lower(d: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in d.items()}


# --- CORS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["https://app.example", "https://q.example.org:8443",
                                    "HTTPS://APP.EXAMPLE"])
def test_preflight_is_said_as_the_core_answers_it(origin: str) -> None:
    docs = _docs(CORS)
    hdrs = (("Origin", origin),)
    doc = explain(docs, "OPTIONS", headers=hdrs)
    core = Core(docs, "OPTIONS", headers=hdrs)
    assert core.status == doc["status"] == doc["verdict"]["status"] == 204
    assert doc["verdict"]["reason"].startswith("answered 204 by the CORS preflight")
    assert not doc["verdict"]["proxied"] and core.endpoint is None
    c = doc["cors"]
    assert c["preflight"] is True and c["origin"] == origin
    assert _lower(c["headers"]) == core.cors() != {}
    assert c["headers"]["Access-Control-Allow-Origin"] == origin
    assert c["allow_origin"] == ["https://app.example", "https://*.example.org:8443"]
    assert c["max_age"] == int(core.cors()["access-control-max-age"])


def test_headers_of_a_proxied_answer_are_the_cores() -> None:
    docs = _docs({**CORS, P + "cors-expose-headers": "X-Total", P + "cors-max-age": "60",
                  P + "cors-allow-credentials": "false"})
    hdrs = (("Origin", "https://app.example"),)
    doc = explain(docs, headers=hdrs)
    # The upstream's own Access-Control-Allow-Origin is replaced (more_set_headers).
    core = Core(docs, headers=hdrs, reply=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                b"Access-Control-Allow-Origin: https://other\r\n\r\n")
    assert doc["verdict"]["proxied"] and core.endpoint == ("10.0.0.1", 8080)
    assert doc["cors"]["preflight"] is False
    assert _lower(doc["cors"]["headers"]) == core.cors()
    assert core.cors()["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-credentials" not in core.cors()
    assert doc["cors"]["expose_headers"] == core.cors()["access-control-expose-headers"]


@pytest.mark.parametrize("origin", ["https://evil.example", "https://app.example.evil",
                                    "https://a.b.example.org:8443", None])
@pytest.mark.parametrize("method", ["OPTIONS", "GET"])
def test_an_origin_not_allowed_gets_nothing(origin: str | None, method: str) -> None:
    docs = _docs(CORS)
    hdrs = () if origin is None else (("Origin", origin),)
    doc = explain(docs, method, headers=hdrs)
    core = Core(docs, method, headers=hdrs)
    assert core.endpoint is not None and core.status == 200 and core.cors() == {}
    assert doc["verdict"]["proxied"] and doc["status"] == 200
    assert doc["cors"]["headers"] == {} and doc["cors"]["preflight"] is False
    assert doc["cors"]["origin"] == origin
    text = ingresslib._explain.render_text(doc)
    assert "no CORS header on the answer" in text and "preflight" not in text


def test_any_origin_and_a_refusal_of_the_access_phase_carry_the_headers() -> None:
    # cors-allow-origin "*" (the default); the source ranges refuse the client: the preflight
    # comes first (rewrite phase), and the 403 carries the headers too.
    docs = _docs({P + "enable-cors": "true", P + "whitelist-source-range": "10.0.0.0/8"})
    hdrs = (("Origin", "https://x.test"),)
    pre = explain(docs, "OPTIONS", headers=hdrs)
    assert pre["status"] == Core(docs, "OPTIONS", headers=hdrs).status == 204
    assert pre["cors"]["headers"]["Access-Control-Allow-Origin"] == "*"
    doc = explain(docs, headers=hdrs)
    core = Core(docs, headers=hdrs)
    assert doc["status"] == core.status == 403
    assert _lower(doc["cors"]["headers"]) == core.cors() != {}
    assert doc["cors"]["preflight"] is False


def test_a_canary_answers_with_the_main_rules_cors_and_limits() -> None:
    canary = _ingress({P + "canary": "true", P + "canary-weight": "100",
                       P + "enable-cors": "false", P + "limit-rps": "1"}).replace(
        "name: site", "name: site-canary").replace("name: web,", "name: web2,")
    docs = _docs({**CORS, P + "limit-rpm": "7"}) + canary + _service("web2", 80, 8080,
                                                                     ("10.0.0.2",))
    hdrs = (("Origin", "https://app.example"),)
    doc = explain(docs, headers=hdrs)
    core = Core(docs, headers=hdrs)
    assert doc["decision"]["canary"] and core.endpoint == ("10.0.0.2", 8080)
    assert _lower(doc["cors"]["headers"]) == core.cors() != {}
    # The zones are the main rule's Ingress's (a canary's own limits are dropped).
    r = doc["rate_limit"]
    assert (r["ingress"], r["rpm"], r["rps"]) == ("default/site", 7, 0)


def test_no_cors_key_without_enable_cors() -> None:
    docs = _docs({P + "cors-allow-origin": "https://app.example"})
    hdrs = (("Origin", "https://app.example"),)
    doc = explain(docs, "OPTIONS", headers=hdrs)
    assert "cors" not in doc and Core(docs, "OPTIONS", headers=hdrs).cors() == {}
    assert doc["verdict"]["proxied"]


def _asgi(docs: str, method: str, origin: str) -> tuple[int, dict[str, str]]:
    async def backend(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = IngressASGI(parse_manifests(docs), backends={"default/web": backend})
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": "/x", "raw_path": b"/x",
             "root_path": "", "query_string": b"", "client": ("203.0.113.9", 5000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"a.test"), (b"origin", origin.encode())]}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], {bytes(n).decode().lower(): bytes(v).decode()
                               for n, v in sent[0].get("headers") or ()
                               if bytes(n).lower().startswith(b"access-control-")}


@pytest.mark.parametrize(("method", "origin"), [("OPTIONS", "https://app.example"),
                                                ("GET", "https://q.example.org:8443"),
                                                ("OPTIONS", "https://evil.example")])
def test_the_adapter_answers_as_explain_says(method: str, origin: str) -> None:
    docs = _docs(CORS)
    doc = explain(docs, method, headers=(("Origin", origin),))
    status, cors = _asgi(docs, method, origin)
    assert status == doc["status"]
    assert cors == _lower(doc["cors"]["headers"])


_ORIGINS = st.sampled_from(["https://app.example", "http://app.example", "https://app.example:1",
                            "https://z.example.org:8443", "https://example.org:8443",
                            "https://y.z.example.org:8443", "null", ""])


@settings(max_examples=examples(0.3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(origin=_ORIGINS, method=st.sampled_from(["OPTIONS", "GET", "POST"]),
       any_origin=st.booleans(), peer=st.sampled_from(["10.1.1.1", "203.0.113.9"]))
def test_explain_and_the_core_agree_on_cors(origin: str, method: str, any_origin: bool,
                                            peer: str) -> None:
    ann = {P + "enable-cors": "true", P + "whitelist-source-range": "10.0.0.0/8"}
    if not any_origin:
        ann[P + "cors-allow-origin"] = CORS[P + "cors-allow-origin"]
    docs = _docs(ann)
    hdrs = (("Origin", origin),)
    doc = explain(docs, method, headers=hdrs, client_ip=peer)
    core = Core(docs, method, headers=hdrs, peer=peer)
    assert doc["status"] == core.status
    assert doc["verdict"]["proxied"] == (core.endpoint is not None)
    assert _lower(doc["cors"]["headers"]) == core.cors()
    assert doc["cors"]["preflight"] == (core.status == 204)


# --- rate limits -----------------------------------------------------------------------------


def _burst_passes(core_proxy: Proxy, peer: str, n: int) -> list[int]:
    """``n`` requests of ``peer`` at the same instant, each answered and finished."""
    return [Core("", proxy=core_proxy, peer=peer).status for _ in range(n)]


def test_rate_limits_are_said_and_the_core_holds_them() -> None:
    docs = _docs({P + "limit-rps": "2", P + "limit-burst-multiplier": "2",
                  P + "limit-rpm": "30", P + "limit-allowlist": "10.0.0.0/8, 192.0.2.7"})
    cfg = ProxySettings(limit_req_status_code=429, limit_conn_status_code=507)
    doc = explain(docs, settings_=cfg)
    r = doc["rate_limit"]
    assert r == {"ingress": "default/site", "rps": 2, "rpm": 30, "burst_multiplier": 2,
                 "rps_burst": 4, "rpm_burst": 60, "connections": 0,
                 "allowlist": ["10.0.0.0/8", "192.0.2.7/32"], "client_ip": "203.0.113.9",
                 "client_allowlisted": False, "limited": True, "status_rate": 429,
                 "status_connections": 507}
    # One request: the limits are said, not simulated; the first request passes.
    assert doc["verdict"]["proxied"] and doc["status"] == 200
    proxy = Proxy(Router(parse_manifests(docs), seed=0), cfg, clock=None)
    # nginx's leaky bucket, nodelay: burst + 1 requests at one instant, then the status.
    got = _burst_passes(proxy, "203.0.113.9", r["rps_burst"] + 2)
    assert got == [200] * (r["rps_burst"] + 1) + [r["status_rate"]]
    # An allowlisted client: explain says so, and the core never refuses it.
    for ip in ("10.3.4.5", "192.0.2.7"):
        d = explain(docs, client_ip=ip, settings_=cfg)["rate_limit"]
        assert d["client_allowlisted"] is True and d["limited"] is False
        assert _burst_passes(proxy, ip, r["rps_burst"] + 3) == [200] * (r["rps_burst"] + 3)
    text = ingresslib._explain.render_text(doc)
    assert ("rate limits of Ingress default/site (all its paths), per client address: 2 "
            "requests/s (burst 4), 30 requests/min (burst 60); refused with 429 past a rate"
            in text)
    assert "client 203.0.113.9 is not in it" in text and "not simulated" in text


def test_connections_are_said_and_the_core_holds_them() -> None:
    docs = _docs({P + "limit-connections": "1"})
    cfg = ProxySettings(limit_conn_status_code=429)
    r = explain(docs, settings_=cfg)["rate_limit"]
    assert (r["connections"], r["rps"], r["rpm"], r["status_connections"]) == (1, 0, 0, 429)
    assert r["allowlist"] == [] and r["client_allowlisted"] is False and r["limited"] is True
    proxy = Proxy(Router(parse_manifests(docs), seed=0), cfg, clock=None)
    first = Core("", proxy=proxy, finish=False)  # still being answered
    assert first.endpoint is not None
    assert Core("", proxy=proxy).status == r["status_connections"]


def test_without_client_ip_an_allowlist_leaves_it_open() -> None:
    docs = _docs({P + "limit-rps": "1", P + "limit-whitelist": "10.0.0.0/8"})
    r = explain(docs, client_ip=None)["rate_limit"]
    assert r["client_ip"] is None and r["client_allowlisted"] is None and r["limited"] is None
    assert r["allowlist"] == ["10.0.0.0/8"]
    text = ingresslib._explain.render_text(explain(docs, client_ip=None))
    assert "give --client-ip to know whether the client is in it" in text


def test_no_rate_limit_key_for_an_invalid_or_zero_limit() -> None:
    for ann in ({P + "limit-rps": "0"}, {P + "limit-rps": "x", P + "limit-connections": "1"}, {}):
        doc = explain(_docs(ann))
        assert "rate_limit" not in doc
    doc = explain(_docs({P + "limit-rps": "x"}))
    assert any("limit-rps" in w for w in doc["warnings"])


def test_forwarded_client_is_the_one_the_zones_key_on() -> None:
    # use-forwarded-headers with a trusted peer: the zones key on the forwarded address.
    docs = _docs({P + "limit-rps": "1", P + "limit-allowlist": "198.51.100.0/24"})
    cfg = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    doc = explain(docs, headers=(("X-Forwarded-For", "198.51.100.4"),), client_ip="10.0.0.2",
                  settings_=cfg)
    r = doc["rate_limit"]
    assert r["client_ip"] == "198.51.100.4" and r["client_allowlisted"] is True
    proxy = Proxy(Router(parse_manifests(docs), seed=0), cfg, clock=None)
    got = [Core("", proxy=proxy, peer="10.0.0.2",
                headers=(("X-Forwarded-For", "198.51.100.4"),)).status for _ in range(8)]
    assert got == [200] * 8


# --- upstream-vhost, proxy-redirect, proxy-cookie ----------------------------------------------


def test_upstream_host_is_the_one_the_core_sends() -> None:
    docs = _docs({P + "upstream-vhost": "internal.svc.cluster.local"})
    doc = explain(docs)
    core = Core(docs)
    assert doc["upstream_vhost"] == "internal.svc.cluster.local"
    assert doc["verdict"]["upstream_host"] == core.upstream["host"] \
        == "internal.svc.cluster.local"
    assert core.upstream["x-forwarded-host"] == "a.test"
    assert "upstream-vhost: the endpoint gets Host: internal.svc.cluster.local" in \
        ingresslib._explain.render_text(doc)
    # Without the annotation: the client's Host, and no upstream_vhost key.
    plain = explain(_docs({}))
    assert "upstream_vhost" not in plain
    assert plain["verdict"]["upstream_host"] == Core(_docs({})).upstream["host"] == "a.test"
    # A refused value (an nginx variable): warned, the client's Host sent.
    bad = _docs({P + "upstream-vhost": "$host"})
    doc = explain(bad)
    assert "upstream_vhost" not in doc and doc["verdict"]["upstream_host"] == "a.test"
    assert Core(bad).upstream["host"] == "a.test"
    assert any("upstream-vhost" in w for w in doc["warnings"])


def test_response_rewrites_are_the_pairs_the_core_applies() -> None:
    docs = _docs({P + "proxy-redirect-from": "http://internal.svc/",
                  P + "proxy-redirect-to": "https://a.test/app/",
                  P + "proxy-cookie-domain": ".Internal.svc a.test",
                  P + "proxy-cookie-path": "/ /app/"})
    rw = explain(docs)["response_rewrite"]
    assert rw == {"proxy_redirect": {"from": "http://internal.svc/", "to": "https://a.test/app/"},
                  "proxy_cookie_domain": {"from": "internal.svc", "to": "a.test"},
                  "proxy_cookie_path": {"from": "/", "to": "/app/"}}
    core = Core(docs, reply=b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n"
                b"Location: http://internal.svc/login\r\n"
                b"Set-Cookie: s=1; Domain=internal.svc; Path=/x\r\n\r\n")
    assert core.get("location") == [rw["proxy_redirect"]["to"] + "login"]
    assert core.get("set-cookie") == ["s=1; Domain=a.test; Path=/app/x"]
    text = ingresslib._explain.render_text(explain(docs))
    assert ("the upstream's response rewritten: Location/Refresh 'http://internal.svc/' -> "
            "'https://a.test/app/'; Set-Cookie domain 'internal.svc' -> 'a.test'; "
            "Set-Cookie path '/' -> '/app/'") in text


def test_one_rewrite_alone_and_none() -> None:
    doc = explain(_docs({P + "proxy-cookie-path": "/ /app/"}))
    assert doc["response_rewrite"] == {"proxy_redirect": None, "proxy_cookie_domain": None,
                                       "proxy_cookie_path": {"from": "/", "to": "/app/"}}
    # proxy-redirect-from without -to: nginx.tmpl writes no proxy_redirect.
    assert "response_rewrite" not in explain(_docs({P + "proxy-redirect-from": "http://x/"}))


# --- default-backend ---------------------------------------------------------------------------

DB = {P + "default-backend": "errors"}


def test_served_by_the_default_backend_as_the_core_serves_it() -> None:
    docs = _docs(DB, web=(), errors=("10.9.0.1",))
    hdrs = (("Accept", "text/html"),)
    doc = explain(docs, headers=hdrs)
    core = Core(docs, headers=hdrs)
    assert core.endpoint == ("10.9.0.1", 9090)
    assert doc["decision"]["endpoint"] == "10.9.0.1:9090"
    assert doc["decision"]["default_backend"] == "custom-default-backend-default-errors"
    db = doc["default_backend"]
    assert db["used"] is True and db["service"] == "default/errors"
    assert db["upstream"] == "custom-default-backend-default-errors"
    assert _lower(db["headers"]) == {k: v for k, v in core.upstream.items()
                                     if k in ("x-code", "x-format", "x-namespace",
                                              "x-ingress-name", "x-service-name",
                                              "x-service-port")}
    assert db["headers"]["X-Code"] == "503" and db["headers"]["X-Format"] == "text/html"
    assert db["headers"]["X-Service-Name"] == "web"
    v = doc["verdict"]
    assert v["proxied"] and doc["status"] == 200
    assert ("served by the default-backend Service default/errors" in v["reason"]
            and "X-Code: 503" in v["reason"])
    text = ingresslib._explain.render_text(doc)
    assert "default-backend default/errors: the rule's Service default/web has no ready " \
           "endpoint: served by the default-backend Service default/errors" in text


@pytest.mark.parametrize(("value", "errors", "web", "why"), [
    ("nope", ("10.9.0.1",), (), "ignored: Service default/nope not found"),
    ("errors", (), (), "ignored: Service default/errors has no ready endpoint either"),
    ("errors", ("10.9.0.1",), ("10.0.0.1",),
     "not used: the rule's Service default/web has a ready endpoint"),
])
def test_the_annotation_not_used_says_why(value: str, errors: tuple[str, ...],
                                          web: tuple[str, ...], why: str) -> None:
    docs = _docs({P + "default-backend": value}, web=web, errors=errors)
    doc = explain(docs)
    core = Core(docs)
    db = doc["default_backend"]
    assert db["used"] is False and db["reason"].startswith(why)
    assert db["headers"] == {} and db["upstream"] is None
    assert db["reason"].count("ignored") <= 1
    assert "default_backend" not in doc.get("decision", {})
    assert "x-code" not in core.upstream
    assert doc["status"] == (core.status if core.endpoint is None else 200)
    if not web:
        assert core.status == doc["status"] == 503
    else:
        assert core.endpoint == ("10.0.0.1", 8080)


def test_an_answer_before_the_default_backend_is_said() -> None:
    docs = _docs({**DB, **CORS}, web=(), errors=("10.9.0.1",))
    hdrs = (("Origin", "https://app.example"),)
    doc = explain(docs, "OPTIONS", headers=hdrs)
    assert Core(docs, "OPTIONS", headers=hdrs).status == doc["status"] == 204
    db = doc["default_backend"]
    assert db["used"] is False and "would serve, but the proxy answers 204 itself" in db["reason"]


def test_no_default_backend_key_without_the_annotation() -> None:
    doc = explain(_docs({}, web=()))
    assert "default_backend" not in doc and doc["status"] == 503


# --- the command --------------------------------------------------------------------------------


def test_the_command_prints_the_same_document(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs({**CORS, **DB, P + "limit-rps": "3", P + "upstream-vhost": "in.svc"},
                 web=(), errors=("10.9.0.1",))
    f = tmp_path / "m.yaml"
    f.write_text(docs)
    args = ["explain", "-f", str(f), "http://a.test/x", "-X", "OPTIONS", "-H",
            "Origin: https://app.example", "--client-ip", "203.0.113.9"]
    assert cli_main([*args, "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    doc = explain(docs, "OPTIONS", headers=(("Origin", "https://app.example"),))
    for key in ("cors", "rate_limit", "upstream_vhost", "default_backend", "verdict", "status"):
        assert out[key] == doc[key]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "proxy answers for client 203.0.113.9: 204 (answered 204 by the CORS preflight" \
        in text
    assert "CORS (allowed origins https://app.example, https://*.example.org:8443): Origin " \
           "'https://app.example': answered 204 by the CORS preflight, with " \
           "Access-Control-Allow-Origin: https://app.example" in text
