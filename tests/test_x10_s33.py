"""Session 33, x10: a second engineer's review of round 1 (h1 empty lines, x7 CORS, x8 rate
limit log variables, x9 the auth subrequest's forwarded-for header), nginx / ingress-nginx as
the spec.

Defect found (its tests failed before the fix):

- x7 left: the server ``location /`` of a host (what answers a path no rule covers) carries
  its oldest Ingress's annotations, its denial included: controller.go ``createServers``
  "loc := &ingress.Location{Path: rootLocation, IsDefBackend: true, ...};
  locationApplyAnnotations(loc, anns)" with "loc.Denied = anns.Denied", and an unusable
  ``proxy-ssl-secret`` is a denial (proxyssl/main.go "error obtaining certificate" ->
  ``ing_errors.LocationDeniedError``; annotations.go ``Extract``: ``data[DeniedKeyName]``).
  nginx.tmpl writes that location as "# Location denied ... return 503;" without the CORS
  template or custom-headers (``isLocationAllowed``). The core answered such a path with the
  default backend's 404 (its CORS preflight 204) carrying the CORS headers. Now 503, no CORS,
  as a routed request of that Ingress gets (``_tls_denied``); before its rate limits, as an
  access denial's (``denied_first``). IngressASGI models no TLS to endpoints (its routed
  requests ignore proxy-ssl-*): unchanged, 404 there.

Checked and found right (no change):

- h1: CRLF alone then EOF (fresh, keep-alive, pipelined behind a request, after a kept EOF)
  is a 400 record, $request "-", $request_length 0; the head timer from the accept on a fresh
  connection, from the first CRLF on a keep-alive one (keep-alive 75 s replaced by the header
  timeout, ngx_http_keepalive_handler's "ngx_del_timer(rev)"); CR | LF split across reads; a
  lone CR; a CRLF flood keeps two bytes; CRLF then a request in a later read is one request
  whose $request_time runs from the first CRLF (the request nginx created then) and whose
  $request_length excludes the CRLFs; such a connection is not ``idle`` (nginx: "c->idle = 0"
  at the first byte), so ``retire`` leaves it to its head timer as nginx's exiting worker does;
  not counted in the metrics (no location's log phase).
- x8: $limit_req_status / $limit_conn_status unset for an allowlisted client (the empty
  ``$limit_<id>`` key: "continue" before any status), PASSED / REJECTED otherwise, limit_conn
  unset when limit_req refused (limit_req's preaccess handler runs first);
  $global_rate_limit_exceeding "n" for every request that reached a location (the unrouted
  server ``location /`` and the denied location's 503 included: nginx.tmpl's "set
  $global_rate_limit_exceeding n;" precedes "return 503"), unset for app-root's 302, the
  413 of find_config and block-user-agents' 403 (server level); "y" / "c"; a failing
  ``CounterStore`` fails open with "n" (global_throttle.lua: "-- fail open"); IngressASGI's
  unrouted global limit in the core's order (after the server location's CORS preflight and
  redirects, before limit_req).
- h1 with the PROXY protocol or TLS first: the driver hands the core only the bytes after the
  PROXY header / the handshake, so the same request begins at the first CRLF; a CRLF on the
  TLS port (no ClientHello) is plain HTTP from the accept's head deadline (``_plain_http``),
  as ngx_http_ssl_handshake's "plain http" branch; $request_length excludes the empty lines
  (ngx_http_process_request_line: "r->request_length = r->header_in->pos -
  r->request_start").
- x7: the denied location's CORS / custom-headers otherwise follow ``isLocationAllowed``; the
  unrouted 429 of a server location's global-rate-limit carries its CORS in the core and in
  IngressASGI alike.
- x9: the subrequest drops the client's forwarded-for-header only from an untrusted peer, the
  core and IngressASGI computing that trust alike (use-forwarded-headers and
  proxy-real-ip-cidr); the mirror and the custom-http-errors fetch are built from the backend
  request's head (``mirror_request``, ``error_page_head``), which already reads that header as
  the chain: nothing to change there.
"""

from __future__ import annotations

from ingresslib import Router, parse_manifests

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml
from test_cors_s25 import P, asgi, headers_of, pair, request, status_of
from test_header_sets_s25 import ALLOWED, ANN, HDRS
from test_x7_s33 import ALLOW, ORIGIN, PROXY_SSL_DENIED


def _cors_names(out: bytes) -> list[bytes]:
    return [n for n in headers_of(out) if n.startswith(b"access-control-")]


def test_core_unrouted_path_of_a_proxy_ssl_denied_server_location_is_503_without_cors() -> None:
    p = pair({**ALLOW, **PROXY_SSL_DENIED}, path="/a")
    for method in ("GET", "OPTIONS"):
        out = p.send(request(method, ORIGIN, path="/zzz"))
        assert status_of(out) == 503, method
        assert _cors_names(out) == [], method
    assert p.upstreams == []
    assert [r.status for r in p.records] == [503, 503]
    assert all(r.phase == "location" for r in p.records)


def test_core_proxy_ssl_denied_server_location_has_no_custom_headers() -> None:
    docs = ingress_yaml("web", "example.test", {**ANN, **PROXY_SSL_DENIED}, path="/a") + HDRS \
        + WEB_SERVICE_YAML
    p = ProxyPair(router=Router(parse_manifests(docs)), settings=ALLOWED)
    out = p.send(request("GET", path="/zzz"))
    assert status_of(out) == 503
    assert b"x-team" not in headers_of(out)
    # The same server location with a usable Secret: its custom-headers on the 404.
    docs = ingress_yaml("web", "example.test", ANN, path="/a") + HDRS + WEB_SERVICE_YAML
    out = ProxyPair(router=Router(parse_manifests(docs)), settings=ALLOWED).send(
        request("GET", path="/zzz"))
    assert status_of(out) == 404 and headers_of(out)[b"x-team"] == [b"web; owner=ops"]


def test_core_proxy_ssl_denied_server_location_answers_before_its_rate_limits() -> None:
    # "return 503" (the rewrite module) comes before lua's global throttle and the preaccess
    # phase's limit_req: a client over the limit gets the location's 503, and no limit ran
    # ($limit_req_status unset).
    p = pair({**ALLOW, **PROXY_SSL_DENIED, P + "limit-rps": "1", P + "limit-burst-multiplier": "1"},
             path="/a")
    statuses = [status_of(p.send(request("GET", ORIGIN, path="/zzz"))) for _ in range(4)]
    assert statuses == [503] * 4
    assert all(r.rate_limit_log is None for r in p.records)


def test_core_usable_server_location_keeps_its_404_and_cors() -> None:
    out = pair(ALLOW, path="/a").send(request("GET", ORIGIN, path="/zzz"))
    assert status_of(out) == 404
    assert headers_of(out)[b"access-control-allow-origin"] == [ORIGIN.encode()]


def test_asgi_models_no_upstream_tls_unrouted_as_routed() -> None:
    # IngressASGI's routed requests ignore proxy-ssl-* (no TLS to an in-process app): its
    # unrouted ones keep the server location's 404 likewise.
    assert asgi({**ALLOW, **PROXY_SSL_DENIED}, "GET", ORIGIN, path="/x")[0] == 200
