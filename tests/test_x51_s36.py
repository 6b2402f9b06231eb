"""Session 36, x51: review of x48 (a tab around the Host value), x49 (a host ingress-nginx
makes regex) and x46's keep-alive race retry.

Defects fixed (each ``test_fix_*`` failed before the fix):

* the keep-alive race retry told the balancer the endpoint failed (``observe(..., ok=False)``):
  under EWMA a healthy endpoint that closed an idle keep-alive connection as it was reused got
  a failure sample of at least 1 s. ingress-nginx's EWMA records one sample per request, the
  last upstream's, in the log phase (rootfs/etc/nginx/lua/balancer/ewma.lua ``after_balance``:
  ``split.get_last_value(ngx.var.upstream_addr)``), so it never sees the dead cached
  connection; and the endpoint did nothing wrong. The endpoint still counts as tried (the
  re-pick goes elsewhere: ewma.lua ``balance`` marks ``tried_endpoints`` as it picks; nginx
  frees the cached peer as failed, ``ngx_http_upstream_next``).
* x49's regex-host warning missed a Prefix ``/api`` rewritten to ``/api`` (its location is
  ``/api/`` after updateServerLocations, so a rewrite there: the host is regex), said nothing
  of the path a Prefix ``/docs/`` no longer takes there (``/docs``), nor of the letter case of
  an upper-case path; and it counted an invalid rewrite-target (ingress-nginx: "defaulting to
  empty") and a rule with a ``resource`` backend (no location) as making the host regex.
* serve did not log that warning, and explain did not say it of the rule it matches (now:
  ``_serve_notes._table_notes``, the line check prints; explain's ``"regex_host"``).

Checked and right (pinned below): x48's Host-tab check (another header's tab passes, any
letter case of ``Host``, absolute-form, a second Host line, obs-fold, ``Host-X``, HTTP/1.0
without Host); x49's warning ignores an Ingress of another class, a wildcard host and the
host-less rules for a named host.
"""

from __future__ import annotations

from typing import Any

from ingresslib import check, explain, parse_manifests
from ingresslib._explain import render_text

from _proxy_harness import ProxyPair, Route, status_of

GET = b"GET /g HTTP/1.1\r\nHost: example.test\r\n\r\n"
A, B = ("10.0.0.1", 80), ("10.0.0.2", 80)


# --- x46: the keep-alive race is no failure of the endpoint -------------------------------------


def test_fix_keepalive_race_is_not_observed_as_a_failure() -> None:
    pair = ProxyPair([Route("/", endpoints=[A, B])])
    assert status_of(pair.send(GET)) == 200
    assert pair.router.observed == [(A, True)]
    pair.upstreams[0].closed = True  # the upstream closed the idle connection meanwhile
    assert status_of(pair.send(GET)) == 200
    # still tried and logged (502), the retry on the next endpoint; only B's answer observed
    rec = pair.records[-1]
    assert rec.upstreams == (A, B) and rec.upstream_statuses == (502, 200)
    assert pair.router.observed == [(A, True), (B, True)]


def test_fix_keepalive_race_on_the_only_endpoint_is_not_observed_as_a_failure() -> None:
    pair = ProxyPair([Route("/", endpoints=[A])])
    assert status_of(pair.send(GET)) == 200
    pair.upstreams[0].closed = True
    assert status_of(pair.send(GET)) == 200
    assert pair.records[-1].upstreams == (A, A)
    assert pair.router.observed == [(A, True), (A, True)]


def test_fix_a_failed_fresh_connection_after_the_race_is_the_only_failure() -> None:
    """The fresh connection refused: an ordinary failed try, observed as one."""
    pair = ProxyPair([Route("/", endpoints=[A, B])])
    assert status_of(pair.send(GET)) == 200
    pair.upstreams[0].closed = True
    pair.refuse = {B}
    out = pair.send(GET)
    assert pair.records[-1].upstreams[:2] == (A, B), out
    assert (B, False) in pair.router.observed and (A, False) not in pair.router.observed


# --- x49: a host ingress-nginx makes regex ------------------------------------------------------

_API = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  annotations:
    nginx.ingress.kubernetes.io/{key}: "{value}"
spec:
  {class_line}rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: {path_type}
        backend: {{service: {{name: api, port: {{number: 80}}}}}}
---
"""

_WEB = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: {exact}
        pathType: Exact
        backend: {{service: {{name: web, port: {{number: 80}}}}}}
      - path: /
        pathType: Prefix
        backend: {{service: {{name: web, port: {{number: 80}}}}}}
      - path: {prefix}
        pathType: Prefix
        backend: {{service: {{name: web, port: {{number: 80}}}}}}
"""

EXACT_FIELD = "spec.rules[0].http.paths[0].path"
PREFIX_FIELD = "spec.rules[0].http.paths[2].path"


def _text(key: str = "rewrite-target", value: str = "/$2", host: str = "shop.example.com",
          path: str = "/api(/|$)(.*)", path_type: str = "ImplementationSpecific",
          exact: str = "/exact", prefix: str = "/docs", class_line: str = "") -> str:
    return _API.format(key=key, value=value, host=host, path=path, path_type=path_type,
                       class_line=class_line) + _WEB.format(exact=exact, prefix=prefix)


def _regex_notes(text: str, **kw: Any) -> dict[str, str]:
    return {d.field: d.message for d in check(parse_manifests(text), **kw)
            if d.object == "Ingress default/web" and "case-insensitive regex" in d.message}


def test_fix_a_prefix_rewritten_to_its_own_path_makes_the_host_regex() -> None:
    """Prefix ``/api`` with ``rewrite-target: /api``: ingress-nginx's updateServerLocations
    (controller/location.go) writes the Prefix location as ``/api/`` (normalizePrefixPath)
    since ``needsRewrite`` is false against ``/api``; the template's enforceRegexModifier then
    compares the target with ``/api/``: "location.Rewrite.Target != location.Path", a
    rewrite, so the host is regex."""
    notes = _regex_notes(_text(value="/api", path="/api", path_type="Prefix"))
    assert set(notes) == {EXACT_FIELD, PREFIX_FIELD}
    assert "rewrite-target of Ingress default/api" in notes[EXACT_FIELD]
    # Its trailing-slash twin and the root are no rewrite (normalizePrefixPath keeps
    # '/api/'; the root location is never normalised).
    assert _regex_notes(_text(value="/api/", path="/api/", path_type="Prefix")) == {}
    assert _regex_notes(_text(value="/api", path="/api", path_type="Exact")) == {}


def test_fix_a_prefix_ending_in_slash_does_not_take_the_path_without_it() -> None:
    """Prefix ``/2024/`` is ``~* "^/2024/"`` (both locations updateServerLocations writes:
    ``/2024/`` and its exact twin ``/2024/``): the request ``/2024`` is not taken there (on
    a plain host nginx 301s it to ``/2024/``), while ingresslib's Prefix takes it."""
    notes = _regex_notes(_text(prefix="/2024/"))
    assert "does not take '/2024'" in notes[PREFIX_FIELD]
    assert "longer paths" not in notes[PREFIX_FIELD]
    assert "does not take" not in notes[EXACT_FIELD]


def test_fix_an_upper_case_path_is_said_to_take_any_letter_case() -> None:
    notes = _regex_notes(_text(exact="/API"))
    assert "any letter case ('/api')" in notes[EXACT_FIELD]


def test_no_note_from_an_ingress_of_another_class_or_host() -> None:
    # another class (not served under --ingress-class nginx), a wildcard host of its own,
    # the host-less rules: none is the server of shop.example.com
    nginx_class = ("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: "
                   "{name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n---\n")
    other = _text(class_line="ingressClassName: other\n  ")
    assert _regex_notes(nginx_class + other, ingress_class="nginx") == {}
    assert _regex_notes(_text(host="'*.example.com'")) == {}
    hostless = _text().replace("  - host: shop.example.com\n    http:\n      paths:\n      - path: "
                               "/api", "  - http:\n      paths:\n      - path: /api", 1)
    assert "host: shop" in hostless and _regex_notes(hostless) == {}


def test_serve_logs_the_regex_host_warning_with_the_tables_notes() -> None:
    """serve logs what check says of a table (``_serve_notes._table_notes``, each line once):
    the regex-host warning too, as the line check prints."""
    from ingresslib._serve_notes import _table_notes
    from ingresslib._router import Router

    res = parse_manifests(_text())
    router = Router(res)
    lines = _table_notes((router.table, router.warnings, router.no_endpoint), res)
    printed = {str(d) for d in check(res) if "case-insensitive regex" in d.message}
    assert len(printed) == 2 and printed <= {k for k, v in lines.items() if v == "warning"}


def _explain(url: str) -> dict[str, Any]:
    return explain(parse_manifests(_text()), url)


def test_explain_names_the_regex_host_on_the_route_it_hits() -> None:
    info = _explain("http://shop.example.com/exact")
    assert info["match"]["path"] == "/exact"
    assert info["regex_host"].startswith("Exact '/exact' on host shop.example.com is the "
                                         "case-insensitive regex '^/exact'")
    text = render_text(info)
    assert f"     warning: {info['regex_host']}" in text
    # the Prefix '/' rule and another host: nothing said, the document as before
    assert "regex_host" not in _explain("http://shop.example.com/other")
    assert "regex_host" not in explain(parse_manifests(_text(host="api.example.com")),
                                       "http://shop.example.com/exact")


# --- x48: a tab around the Host value -----------------------------------------------------------


def _status(head: bytes) -> int:
    pair = ProxyPair([Route("/", endpoints=[A])])
    return status_of(pair.send(head))


def test_a_tab_in_another_header_passes() -> None:
    # A tab inside (or around) any other value is legal (RFC 9110 field-vchar / OWS) and
    # nginx keeps it: proxied.
    for line in (b"User-Agent: a\tb", b"Cookie: a=1;\tb=2", b"X-A:\tv\t"):
        assert _status(b"GET /g HTTP/1.1\r\nHost: example.test\r\n" + line + b"\r\n\r\n") \
            == 200, line


def test_a_tab_around_host_is_400_in_any_case_and_form() -> None:
    for head in (b"GET /g HTTP/1.1\r\nHOST: example.test\t\r\n\r\n",
                 b"GET /g HTTP/1.1\r\nhOsT:\texample.test\r\n\r\n",
                 # absolute-form: nginx validates the Host header all the same
                 # (ngx_http_process_host runs ngx_http_validate_host on every Host line)
                 b"GET http://example.test/g HTTP/1.1\r\nHost: example.test\t\r\n\r\n",
                 # a second Host line: 400 either way (duplicate, or the tab)
                 b"GET /g HTTP/1.1\r\nHost: example.test\r\nHost:\texample.test\r\n\r\n",
                 # an obs-fold starting with a tab: refused as obs-fold
                 b"GET /g HTTP/1.1\r\nHost: example.test\r\n\tx\r\n\r\n"):
        assert _status(head) == 400, head
    # a header whose name only starts with "host" is another header
    assert _status(b"GET /g HTTP/1.1\r\nHost: example.test\r\nHost-X:\ta\r\n\r\n") == 200
    # HTTP/1.0 without Host: nothing to check
    assert _status(b"GET /g HTTP/1.0\r\nUser-Agent: a\tb\r\n\r\n") in (200, 404)


def test_fix_an_invalid_rewrite_target_makes_no_regex_host() -> None:
    """ingress-nginx's rewrite parser (annotations/rewrite/main.go ``Parse``): an invalid
    rewrite-target "defaulting to empty" (``config.Target = ""``): no rewrite, so no regex
    host; ingresslib ignores it too (a warning on the annotation)."""
    findings = check(parse_manifests(_text(value="/a b")))
    assert any(d.field == "metadata.annotations[nginx.ingress.kubernetes.io/rewrite-target]"
               for d in findings)
    assert _regex_notes(_text(value="/a b", path="/api", path_type="Prefix")) == {}


def test_fix_a_resource_backend_rule_makes_no_regex_host() -> None:
    """ingress-nginx writes no location for a rule whose backend is a resource (controller.go
    getBackendServers: "if path.Backend.Service == nil { // skip non-service backends ...
    continue }"), so its use-regex reaches no location of the server."""
    text = _text(key="use-regex", value="true", path="/api", path_type="Prefix").replace(
        "backend: {service: {name: api, port: {number: 80}}}",
        "backend: {resource: {apiGroup: k8s.example.com, kind: Bucket, name: b}}")
    assert "kind: Bucket" in text
    assert _regex_notes(text) == {}
