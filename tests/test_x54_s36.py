"""Session 36, x54: a rewrite-target equal to a Prefix rule's path.

ingress-nginx (internal/ingress/controller/location.go ``updateServerLocations``) decides
whether a Prefix location "needs rewrite" on the rule path as written (``needsRewrite``:
"len(Target) > 0 && Target != location.Path"): for Prefix ``/foo`` and target ``/foo`` it does
not, so the location is normalised (``normalizePrefixPath``: ``/foo/``) and an exact twin
(``PathType = Exact``, path ``/foo``) is added after it. template.go ``buildProxyPass`` then
compares the target with each *location's* path ("if path == location.Rewrite.Target { return
defProxyPass }"): the twin ``/foo`` writes no rewrite, the ``/foo/`` location writes
``rewrite "(?i)/foo/" /foo break;``. That location now needs a rewrite, so ``enforceRegexModifier``
makes the host regex: ``~* "^/foo/"`` then its twin ``~* "^/foo"`` (the locations keep the
order getBackendServers sorted them in, the twin right after its location). nginx's rewrite
replaces the whole URI: ``/foo/bar?x=1`` goes up as ``/foo?x=1`` (no "?" in the target, so
the arguments are appended), ``/foo?x=1`` as it came. No ``$n`` is possible (the regex is the
literal path, no group).

Every other shape writes no rewrite: Prefix ``/foo/`` (its twin and its location both have
path ``/foo/``), Prefix ``/`` (``rootLocation`` is not touched), Exact and
ImplementationSpecific (only Prefix locations are normalised), and any of them with
``use-regex: "true"`` (``location.Rewrite.UseRegex``: "locations with rewrite or using regular
expressions are not modified").
"""

from __future__ import annotations

from typing import Any

import pytest

import ingresslib
from ingresslib import parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Route

TARGET = PREFIX + "rewrite-target"
H = b"Host: example.test\r\n"


def _opts(path: str, path_type: str, target: str, use_regex: bool = False) -> Any:
    ann = {TARGET: target}
    if use_regex:
        ann[PREFIX + "use-regex"] = "true"
    return parse_route_options(ann, path, ProxySettings(), path_type=path_type)


# --- RouteOptions.rewrite_uri ---------------------------------------------------------------


def test_prefix_path_rewritten_to_itself_rewrites_below_it() -> None:
    o = _opts("/foo", "Prefix", "/foo")
    # the /foo/ location: rewrite "(?i)/foo/" /foo break;
    assert o.rewrite_uri("/foo/bar", None) == "/foo"
    assert o.rewrite_uri("/foo/bar/baz", "x=1") == "/foo?x=1"
    assert o.rewrite_uri("/foo/", None) == "/foo"
    assert o.rewrite_applies("/foo/bar") is True
    # the exact twin = /foo: no rewrite, the request target as it came
    assert o.rewrite_uri("/foo", "x=1") == "/foo?x=1"
    assert o.rewrite_uri("/foo", "") == "/foo?"
    assert o.rewrite_applies("/foo") is False


@pytest.mark.parametrize(("path", "path_type", "use_regex"), [
    ("/foo/", "Prefix", False),
    ("/", "Prefix", False),
    ("/foo", "Exact", False),
    ("/foo", "ImplementationSpecific", False),
    ("/foo", "Prefix", True),
    ("/foo/", "Prefix", True),
    ("/", "Prefix", True),
    ("/foo", "Exact", True),
    ("/foo", "ImplementationSpecific", True),
])
def test_the_other_shapes_rewrite_nothing(path: str, path_type: str, use_regex: bool) -> None:
    o = _opts(path, path_type, path, use_regex)
    assert o.rewrite_target is None
    below = path.rstrip("/") + "/bar"
    assert o.rewrite_uri(below, "x=1") == below + "?x=1"
    assert o.rewrite_uri(path, None) == path


def test_a_target_other_than_the_path_is_unchanged() -> None:
    # needsRewrite holds before normalising: one location, path as written, "(?i)/foo".
    o = _opts("/foo", "Prefix", "/foo/")
    assert o.rewrite_uri("/foo", None) == "/foo/"
    assert o.rewrite_uri("/foo/bar", "x=1") == "/foo/?x=1"


# --- through the proxy core, and explain's "rewrite" -----------------------------------------


def _upstream_target(request: bytes) -> bytes:
    pair = ProxyPair([Route("/foo", annotations={TARGET: "/foo"})])
    pair.send(b"GET " + request + b" HTTP/1.1\r\n" + H + b"\r\n")
    return bytes(pair.upstreams[0].raw).split(b"\r\n", 1)[0]


def test_the_proxy_core_sends_what_ingress_nginx_sends() -> None:
    assert _upstream_target(b"/foo/bar?x=1") == b"GET /foo?x=1 HTTP/1.1"
    assert _upstream_target(b"/foo/") == b"GET /foo HTTP/1.1"
    assert _upstream_target(b"/foo?x=1") == b"GET /foo?x=1 HTTP/1.1"


def _docs(path_type: str) -> str:
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: rw, namespace: default, annotations: {{'{TARGET}': /foo}}}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /foo, pathType: {path_type}, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
""" + WEB_SERVICE_YAML


def test_explain_says_what_the_core_sends() -> None:
    docs = parse_manifests(_docs("Prefix"))
    doc = ingresslib.explain(docs, "http://a.test/foo/bar?x=1")
    assert doc["rewrite"]["applies"] is True
    assert doc["rewrite"]["upstream_uri"] == "/foo?x=1"
    assert doc["verdict"]["proxied"] is True and doc["rewrite"]["sent"] is True
    twin = ingresslib.explain(docs, "http://a.test/foo?x=1")
    assert twin["rewrite"]["applies"] is False and twin["rewrite"]["upstream_uri"] == "/foo?x=1"
    # Exact /foo rewritten to /foo: no rewrite at all, no "rewrite" key
    exact = ingresslib.explain(parse_manifests(_docs("Exact")), "http://a.test/foo")
    assert "rewrite" not in exact


def test_x_forwarded_prefix_goes_with_the_rewrite() -> None:
    # buildProxyPass writes "proxy_set_header X-Forwarded-Prefix" with the rewrite of the
    # /foo/ location; the twin /foo sends none (tests/test_x56_s36.py).
    ann = {TARGET: "/foo", PREFIX + "x-forwarded-prefix": "/pre"}
    pair = ProxyPair([Route("/foo", annotations=ann)])
    pair.send(b"GET /foo/bar HTTP/1.1\r\n" + H + b"\r\n")
    head = bytes(pair.upstreams[0].raw).split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"GET /foo HTTP/1.1\r\n")
    assert b"\r\nx-forwarded-prefix: /pre" in head.lower()


def test_a_regex_path_rewritten_to_itself_is_reported() -> None:
    # The /a+b/ location rewrites, so ingress-nginx makes the host regex (enforceRegexModifier):
    # "^/a+b/" is a regex there, a literal prefix here (_regex_path_warning).
    said: list[str] = []
    parse_route_options({TARGET: "/a+b"}, "/a+b", ProxySettings(), path_type="Prefix",
                        auth_warn=said.append)
    assert len(said) == 1 and "is a regex in ingress-nginx" in said[0]
    said.clear()
    parse_route_options({TARGET: "/a+b"}, "/a+b", ProxySettings(), path_type="Exact",
                        auth_warn=said.append)
    assert said == []
