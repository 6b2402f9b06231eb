"""Session 36, x49: real-world manifests. One host turned regex by another Ingress.

ingress-nginx makes every location of a server (host) a case-insensitive regex ``~* "^PATH"``
as soon as one of its locations has ``use-regex`` or a rewrite-target (template.go
``enforceRegexModifier`` / ``buildLocation``; docs/user-guide/ingress-path-matching.md: "the
case insensitive regular expression location modifier will be enforced on ALL paths for a
given host regardless of what Ingress they are defined on"). An Exact or Prefix rule of
*another* Ingress on that host then also takes longer paths and any letter case there, which
ingresslib (Exact/Prefix as the Ingress API says) does not: ``check`` says so, never silently
(SEMANTICS §2). The manifests are written for these tests, in the shape found in the wild
(kubernetes/ingress-nginx issue 8208: "Exact pathType behaves the same as Prefix when another
rule uses rewrite-target").
"""

from __future__ import annotations

from ingresslib import check, parse_manifests

_REWRITING = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  annotations:
    nginx.ingress.kubernetes.io/{key}: "{value}"
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: {path}
        pathType: {path_type}
        backend: {{service: {{name: api, port: {{number: 80}}}}}}
---
"""

_PLAIN = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /exact
        pathType: Exact
        backend: {service: {name: web, port: {number: 80}}}
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
      - path: /docs
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
"""


def _rewriting(key: str = "rewrite-target", value: str = "/$2", host: str = "shop.example.com",
               path: str = "/api(/|$)(.*)", path_type: str = "ImplementationSpecific") -> str:
    return _REWRITING.format(key=key, value=value, host=host, path=path, path_type=path_type)


def _regex_host_notes(text: str) -> dict[str, str]:
    """The ``check`` findings on Ingress default/web's rule paths that name the regex host:
    field -> message."""
    return {d.field: d.message for d in check(parse_manifests(text))
            if d.object == "Ingress default/web" and "case-insensitive regex" in d.message}


def test_another_ingress_rewrite_target_turns_exact_and_prefix_paths_regex() -> None:
    notes = _regex_host_notes(_rewriting() + _PLAIN)
    assert set(notes) == {"spec.rules[0].http.paths[0].path",
                          "spec.rules[0].http.paths[2].path"}
    exact = notes["spec.rules[0].http.paths[0].path"]
    assert "Exact '/exact' on host shop.example.com" in exact
    assert "'^/exact'" in exact and "Ingress default/api" in exact
    assert "'/exactx'" in exact and "'/EXACT'" in exact
    assert "Prefix '/docs'" in notes["spec.rules[0].http.paths[2].path"]


def test_use_regex_alone_turns_the_host_regex() -> None:
    notes = _regex_host_notes(_rewriting(key="use-regex", value="true", path="/api",
                                         path_type="Prefix") + _PLAIN)
    assert set(notes) == {"spec.rules[0].http.paths[0].path",
                          "spec.rules[0].http.paths[2].path"}
    assert "use-regex" in notes["spec.rules[0].http.paths[0].path"]


def test_no_note_without_regex_on_the_host() -> None:
    # use-regex "false", another host's rewrite, and a rewrite-target equal to its own path
    # (template.go needsRewrite: "len(Target) > 0 && Target != location.Path") leave the
    # host's locations plain.
    assert _regex_host_notes(_rewriting(key="use-regex", value="false") + _PLAIN) == {}
    assert _regex_host_notes(_rewriting(host="other.example.com") + _PLAIN) == {}
    assert _regex_host_notes(_rewriting(value="/", path="/", path_type="Prefix") + _PLAIN) == {}


def test_a_canary_use_regex_does_not_count() -> None:
    # A canary lends only its backend to the main location (its other annotations ignored).
    canary = _rewriting(key="use-regex", value="true", path="/exact", path_type="Exact")
    canary = canary.replace("  annotations:\n",
                            '  annotations:\n    nginx.ingress.kubernetes.io/canary: "true"\n')
    assert _regex_host_notes(canary + _PLAIN) == {}


def test_a_regex_path_of_another_ingress_is_said_once() -> None:
    # The regex path under its own rewrite-target: parse_route_options' warning alone (not
    # twice); a regex path of another Ingress on the host: the same warning, on that path.
    other = _PLAIN.replace("path: /docs\n        pathType: Prefix",
                           "path: /docs/(.*)\n        pathType: ImplementationSpecific")
    findings = check(parse_manifests(_rewriting() + other))
    api = [d for d in findings if d.object == "Ingress default/api"
           and d.field == "spec.rules[0].http.paths[0].path"]
    assert len(api) == 1 and "is a regex in ingress-nginx" in api[0].message
    docs = [d for d in findings if d.object == "Ingress default/web"
            and d.field == "spec.rules[0].http.paths[2].path"]
    assert len(docs) == 1 and "'/docs/(.*)' is a regex in ingress-nginx" in docs[0].message


def test_longer_paths_are_named_unless_a_prefix_already_takes_them() -> None:
    # ingress-nginx docs/user-guide/ingress-path-matching.md's "Path Priority" example, in v1.
    text = _rewriting(path="/foo/bar/(.+)") + _PLAIN.replace("/exact", "/foo/bar/").replace(
        "/docs", "/docs/")
    notes = _regex_host_notes(text)
    assert "longer paths ('/foo/bar/x')" in notes["spec.rules[0].http.paths[0].path"]
    assert "longer paths" not in notes["spec.rules[0].http.paths[2].path"]
    assert "any letter case ('/DOCS/')" in notes["spec.rules[0].http.paths[2].path"]


def test_a_caseless_prefix_ending_in_slash_only_misses_its_path_without_slash() -> None:
    # Prefix '/2024/': '^/2024/' takes what it takes (element-wise), no letter to fold; but
    # not '/2024', which the Prefix takes (x51 s36: said, it goes to another rule there).
    text = _rewriting() + _PLAIN.replace("/docs", "/2024/")
    note = _regex_host_notes(text)["spec.rules[0].http.paths[2].path"]
    assert "there it does not take '/2024'" in note
    assert "longer paths" not in note and "letter case" not in note
    assert "longer paths ('/exactx'), any letter case" in _regex_host_notes(text)[
        "spec.rules[0].http.paths[0].path"]
