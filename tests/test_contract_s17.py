"""CONTRACT.md, line by line, as an outside checker reads it (session 17 audit).

Only the public surface: ``import ingresslib`` and the ``ingresslib`` console script (or
``python -m ingresslib``) run as a child process. Code blocks of CONTRACT.md are copied here
literally (``CONTRACT_*`` strings) and executed; each other test quotes the sentence it pins.
Promises already pinned elsewhere are listed in the session report, not repeated here, except
where the literal form (argument names, the console script itself) was not exercised.

Servers bind 127.0.0.1 only and are stopped by the test that started them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import ingresslib

#: The console script installed next to this interpreter (CONTRACT: "Installed as the console
#: script `ingresslib`").
SCRIPT = str(Path(sys.executable).with_name("ingresslib"))

# --- CONTRACT.md's code blocks, copied literally ------------------------------------------------

CONTRACT_LOADING = '''\
import ingresslib

res = ingresslib.load_manifests("deploy/", "extra.yaml")   # files or folders; YAML (multi-doc) or JSON; kind: List too
res = ingresslib.parse_manifests(text)                     # str or bytes of YAML/JSON
res = ingresslib.Resources.from_dicts(list_of_dicts)       # already-parsed objects (e.g. from the official client's to_dict())
'''

CONTRACT_ROUTE_TABLE = '''\
table = ingresslib.RouteTable.build(res, ingress_class=None, controller=None)
m = table.match(host, path)        # -> ingresslib.Match | None
'''

CONTRACT_ROUTER = '''\
router = ingresslib.Router(res, ingress_class=None, controller=None, seed=None)
d = router.route(method, host, path, headers=(), client_ip=None)   # -> ingresslib.Decision | None
router.update(res)                                                 # atomic swap to new resources
'''

#: The names CONTRACT.md spells as ``ingresslib.X``.
CONTRACT_NAMES = ("load_manifests", "parse_manifests", "Resources", "ValidationError",
                  "RouteTable", "Match", "BadRequestError", "Router", "Decision")

# --- manifests ------------------------------------------------------------------------------------


def shop(port: int, *, ready: bool = True, extra: str = "") -> str:
    """An Ingress (named Service port), its Service (port 80 -> targetPort 'web') and an
    EndpointSlice on 127.0.0.1:``port``."""
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop, namespace: prod}}
spec:
  rules:
  - host: shop.example.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
      - {{path: /exact, pathType: Exact, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: prod}}
spec: {{ports: [{{name: http, port: 80, targetPort: web}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: prod, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: {str(ready).lower()}}}}}]
{extra}"""


INVALID_TWO_ERRORS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: UPPER.example
    http:
      paths:
      - {path: relative, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
"""


# --- the public names -----------------------------------------------------------------------------


def test_contract_names_are_public_and_in_all() -> None:
    # "The names, signatures and CLI below are what users and outside checks rely on."
    for name in CONTRACT_NAMES:
        assert name in ingresslib.__all__, name
        assert getattr(ingresslib, name) is not None
    # Every name __all__ promises resolves (four are imported lazily, PEP 562).
    for name in ingresslib.__all__:
        assert hasattr(ingresslib, name), name
    assert len(set(ingresslib.__all__)) == len(ingresslib.__all__)


def test_every_public_name_has_its_own_docstring() -> None:
    # A dataclass without a docstring gets an generated one ("Match(service: ...)"), and a
    # constant only has its type's: neither documents the name.
    for name in ingresslib.__all__:
        obj = getattr(ingresslib, name)
        if isinstance(obj, str):  # MATCHER: a value, documented in README
            continue
        doc = obj.__doc__
        assert doc and doc.strip(), name
        assert not doc.startswith(f"{name}("), (name, doc[:60])


def test_router_route_as_users_reach_it_has_a_docstring() -> None:
    # router.route is the published FastRoute.route (_pick.pyx / _pick_py.py), which had no
    # docstring: help(router.route) documented nothing.
    router = ingresslib.Router(ingresslib.parse_manifests(shop(8080)))
    assert inspect.getdoc(router.route)


def test_table_match_as_users_reach_it_has_a_docstring() -> None:
    # table.match is the matcher's lookup; the compiled one had a comment, no docstring.
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(shop(8080)))
    assert inspect.getdoc(table.match)


def test_error_types() -> None:
    # "`ingresslib.ValidationError` (a `ValueError`)"; "`ingresslib.BadRequestError` (a
    # `ValueError` with `.status_hint`, e.g. 400)".
    assert issubclass(ingresslib.ValidationError, ValueError)
    assert issubclass(ingresslib.BadRequestError, ValueError)


def test_signatures_as_written() -> None:
    # "Keep them working exactly as written (same names, same argument names, same meaning)."
    def params(f: Any) -> list[tuple[str, Any]]:
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values()
                if p.kind is not inspect.Parameter.KEYWORD_ONLY]

    empty = inspect.Parameter.empty
    assert params(ingresslib.load_manifests) == [("paths", empty)]
    assert inspect.signature(ingresslib.load_manifests).parameters["paths"].kind is \
        inspect.Parameter.VAR_POSITIONAL
    assert params(ingresslib.parse_manifests) == [("text", empty)]
    assert params(ingresslib.RouteTable.build) == [("res", empty), ("ingress_class", None),
                                                   ("controller", None)]
    assert params(ingresslib.Router) == [("res", empty), ("ingress_class", None),
                                         ("controller", None), ("seed", None)]
    assert params(ingresslib.Router.route)[:6] == [
        ("self", empty), ("method", empty), ("host", empty), ("path", empty), ("headers", ()),
        ("client_ip", None)]
    assert params(ingresslib.Router.update) == [("self", empty), ("res", empty)]
    # "Add whatever else serves users: more keyword arguments with defaults": nothing added
    # without a default (a call as written would then fail).
    for f in (ingresslib.load_manifests, ingresslib.parse_manifests, ingresslib.Resources.from_dicts,
              ingresslib.RouteTable.build, ingresslib.Router, ingresslib.Router.route,
              ingresslib.Router.update):
        for p in inspect.signature(f).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                assert p.default is not empty, (f, p.name)


# --- "Loading manifests" --------------------------------------------------------------------------


def test_loading_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "shop.yaml").write_text(shop(8080))
    # "YAML (multi-doc) or JSON; kind: List too": extra.yaml holds a JSON List.
    (tmp_path / "extra.yaml").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"},
         "type": "Opaque", "data": {}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
         "spec": {"controller": "k8s.io/ingress-nginx"}}]}))
    seen: list[tuple[int, ...]] = []

    class Spy(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            if key == "res":
                seen.append((len(value.ingresses), len(value.ingress_classes), len(value.services),
                             len(value.endpoint_slices), len(value.secrets)))
            super().__setitem__(key, value)

    for text in (shop(8080), shop(8080).encode()):
        ns = Spy(text=text, list_of_dicts=[{
            "api_version": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "target_port": 8080}]}}])
        exec(CONTRACT_LOADING, ns)  # noqa: S102 -- CONTRACT.md's block, as written
        assert isinstance(ns["res"], ingresslib.Resources)
    assert seen == [(1, 1, 1, 1, 1), (1, 0, 1, 1, 0), (0, 0, 1, 0, 0)] * 2


def test_from_dicts_argument_name_as_written() -> None:
    # CONTRACT: "same names, same argument names": `Resources.from_dicts(list_of_dicts)`; the
    # parameter was called `objects`, so the keyword form raised TypeError.
    res = ingresslib.Resources.from_dicts(list_of_dicts=[
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}])
    assert [s.metadata.name for s in res.services] == ["s"]


def test_understood_kinds_and_other_kinds() -> None:
    # "Kinds understood: networking.k8s.io/v1 Ingress and IngressClass; v1 Service, Endpoints,
    # Secret; discovery.k8s.io/v1 EndpointSlice. Other kinds are kept aside and ignored, not
    # rejected." + "`metadata.namespace` defaults to "default"."
    res = ingresslib.parse_manifests(shop(8080, extra="""\
---
apiVersion: v1
kind: Endpoints
metadata: {name: old}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: 9}]}]
---
apiVersion: v1
kind: Secret
metadata: {name: s}
type: Opaque
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec: {this: [is, not, checked]}
"""))
    assert [s.metadata.namespace for s in res.secrets] == ["default"]
    assert len(res.ingresses) == len(res.services) == len(res.endpoint_slices) == 1
    for seq in (res.ingresses, res.ingress_classes, res.services, res.endpoint_slices, res.secrets):
        assert isinstance(seq, tuple)   # "read-only sequences"
    obj = res.ingresses[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.metadata = None  # type: ignore[misc,assignment]   # "immutable model objects"


def test_validation_error_lists_every_problem_one_per_line() -> None:
    # "It lists every problem found, each with the object (`Ingress default/web`), the field
    # path (`spec.rules[0].http.paths[1].path`) and a message in the API server's style.
    # `str(err)` prints them one per line."
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.parse_manifests(INVALID_TWO_ERRORS)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert any("Ingress default/web: spec.rules[0].host: Invalid value: \"UPPER.example\"" in ln
               for ln in lines), lines
    assert any("Ingress default/web: spec.rules[0].http.paths[0].path: Invalid value: \"relative\""
               in ln for ln in lines), lines


# --- "Route table" --------------------------------------------------------------------------------


def test_route_table_block_runs_as_written() -> None:
    res = ingresslib.parse_manifests(shop(8080))
    for host, path, want in (("Shop.Example.Test:8443", "/cart/%61dd", "/"),
                             ("shop.example.test", "/exact", "/exact"),
                             ("other.test", "/", None)):
        ns: dict[str, Any] = {"ingresslib": ingresslib, "res": res, "host": host, "path": path}
        exec(CONTRACT_ROUTE_TABLE, ns)  # noqa: S102
        m = ns["m"]
        if want is None:
            assert m is None   # "`None` means no rule and no default backend matched"
            continue
        assert isinstance(m, ingresslib.Match)
        assert m.path == want


def test_match_fields_types() -> None:
    # "`Match` has at least: `service` (str, or None for a resource backend), `port` (int or str
    # port name, as written in the Ingress), `namespace`, `ingress` ("namespace/name"), `host`
    # (the rule's host or None), `path` (the rule's path, or None for a default backend),
    # `path_type` ... or None, `is_default_backend` (bool)."
    res = ingresslib.parse_manifests(shop(8080).replace(
        "spec:\n  rules:", "spec:\n  defaultBackend: {service: {name: fallback, port: {number: 81}}}\n"
                           "  rules:", 1))
    t = ingresslib.RouteTable.build(res)
    named = t.match("shop.example.test", "/x")
    numbered = t.match("shop.example.test", "/exact")
    default = t.match("else.test", "/x")
    assert named is not None and numbered is not None and default is not None
    assert (named.service, named.port, named.namespace, named.ingress, named.host, named.path,
            named.path_type, named.is_default_backend) == \
        ("web", "http", "prod", "prod/shop", "shop.example.test", "/", "Prefix", False)
    assert numbered.port == 80 and type(numbered.port) is int and numbered.path_type == "Exact"
    assert (default.service, default.port, default.path, default.path_type, default.is_default_backend,
            default.host) == ("fallback", 81, None, None, True, None)


def test_host_forms_and_bad_request() -> None:
    # "`host` is the Host header value as received (any case, may carry `:port`, IPv6 literal
    # in brackets)"; "a path that must be rejected raises `ingresslib.BadRequestError` (a
    # `ValueError` with `.status_hint`, e.g. 400)".
    res = ingresslib.parse_manifests("""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: a.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}
  - http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: any, port: {number: 80}}}}]}
""")
    t = ingresslib.RouteTable.build(res)
    for host, want in (("A.TEST", "a"), ("a.test:8080", "a"), ("[::1]", "any"), ("[::1]:8080", "any"),
                       ("b.test", "any")):
        m = t.match(host, "/x")
        assert m is not None and m.service == want, host
    with pytest.raises(ingresslib.BadRequestError) as info:
        t.match("a.test", "/../etc")
    assert isinstance(info.value, ValueError)
    assert info.value.status_hint == 400


def test_class_filter_by_legacy_annotation_and_default_class() -> None:
    # "an Ingress is served when its `spec.ingressClassName` (or legacy annotation
    # `kubernetes.io/ingress.class`) names a matching class, or it names no class and a matching
    # IngressClass carries `ingressclass.kubernetes.io/is-default-class: "true"`."
    def ing(name: str, cls_line: str) -> str:
        return f"""\
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}{cls_line}}}
spec:
  rules:
  - host: {name}.test
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}]}}
"""
    text = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: other}
spec: {controller: example.com/other}
""" + ing("legacy", ", annotations: {kubernetes.io/ingress.class: nginx}") + ing("none", "") \
        + ing("foreign", ", annotations: {kubernetes.io/ingress.class: other}")
    res = ingresslib.parse_manifests(text)
    every = ingresslib.RouteTable.build(res)
    for kw in ({"ingress_class": "nginx"}, {"controller": "k8s.io/ingress-nginx"}):
        t = ingresslib.RouteTable.build(res, **kw)
        served = {n for n in ("legacy", "none", "foreign") if t.match(f"{n}.test", "/") is not None}
        assert served == {"legacy", "none"}, kw
    assert all(every.match(f"{n}.test", "/") is not None for n in ("legacy", "none", "foreign"))


# --- "Router" -------------------------------------------------------------------------------------


def test_router_block_runs_as_written() -> None:
    res = ingresslib.parse_manifests(shop(8080))
    ns: dict[str, Any] = {"ingresslib": ingresslib, "res": res, "method": "GET",
                          "host": "shop.example.test", "path": "/x"}
    exec(CONTRACT_ROUTER, ns)  # noqa: S102
    d = ns["d"]
    assert isinstance(d, ingresslib.Decision)
    # "`Decision` has at least: `service`, `namespace`, `port` (the resolved numeric target
    # port), `endpoint` (`(ip, port)` tuple of the chosen ready endpoint), `canary` (bool),
    # `match` (the `Match`)." The Ingress names port "http" -> Service port 80 -> targetPort
    # "web" -> the EndpointSlice port named "http"... resolved to 8080.
    assert (d.service, d.namespace, d.port, d.endpoint, d.canary) == ("web", "prod", 8080,
                                                                       ("127.0.0.1", 8080), False)
    assert isinstance(d.match, ingresslib.Match)
    assert d.match.ingress == "prod/shop"
    # The number form: the Ingress's port 80 is the Service port whose targetPort is "web".
    ns.update(path="/exact")
    exec(CONTRACT_ROUTER, ns)  # noqa: S102
    assert (ns["d"].port, ns["d"].endpoint, ns["d"].match.port) == (8080, ("127.0.0.1", 8080), 80)


def test_update_swaps_to_new_resources() -> None:
    # "router.update(res)  # atomic swap to new resources"
    router = ingresslib.Router(ingresslib.parse_manifests(shop(8080)))
    router.update(ingresslib.parse_manifests(shop(9090).replace("shop.example.test", "new.test")))
    assert router.route("GET", "shop.example.test", "/") is None
    d = router.route("GET", "new.test", "/")
    assert d is not None and d.endpoint == ("127.0.0.1", 9090)
    router.update(res=ingresslib.parse_manifests(shop(8080)))
    d = router.route("GET", "shop.example.test", "/")
    assert d is not None and d.endpoint == ("127.0.0.1", 8080)


def test_router_class_filters_as_the_table() -> None:
    # Router(res, ingress_class=None, controller=None, ...): the same filter as RouteTable.build.
    res = ingresslib.parse_manifests(
        shop(8080).replace("spec:\n  rules:", "spec:\n  ingressClassName: nginx\n  rules:", 1)
        + "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n"
          "spec: {controller: k8s.io/ingress-nginx}\n")
    for kw, served in (({"ingress_class": "nginx"}, True), ({"ingress_class": "x"}, False),
                       ({"controller": "k8s.io/ingress-nginx"}, True), ({"controller": "x.io/y"}, False),
                       ({}, True)):
        d = ingresslib.Router(res, **kw).route("GET", "shop.example.test", "/")  # type: ignore[arg-type]
        assert (d is not None) is served, kw


def test_router_keyword_arguments_as_written() -> None:
    res = ingresslib.parse_manifests(shop(8080))
    router = ingresslib.Router(res=res, ingress_class=None, controller=None, seed=None)
    d = router.route(method="GET", host="shop.example.test", path="/", headers=(), client_ip=None)
    assert d is not None and d.service == "web"


CANARY = """\
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop-canary
  namespace: prod
  annotations: {nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-by-cookie: cc,
                nginx.ingress.kubernetes.io/canary-by-header: X-Canary}
spec:
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web2, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web2, namespace: prod}
spec: {ports: [{port: 80, targetPort: 7070}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web2, namespace: prod}
subsets:
- addresses: [{ip: 127.0.0.2}]
  notReadyAddresses: [{ip: 127.0.0.3}]
  ports: [{port: 7070}]
"""


@pytest.mark.parametrize("headers", [
    {"X-Canary": "always"},
    [("x-canary", "always")],
    [(b"X-Canary", b"always")],
    (("Cookie", "a=1; cc=always"),),
    [(b"cookie", b"a=1; cc=always")],
    {"Cookie": "cc=always"},
    # "cookies are read from the `Cookie` header(s)": the cookie in a second Cookie header.
    [("Cookie", "a=1"), ("Cookie", "cc=always")],
    [(b"Cookie", b"a=1"), (b"cookie", b"b=2; cc=always")],
], ids=repr)
def test_headers_mapping_or_pairs_str_or_bytes_and_cookies(headers: Any) -> None:
    # "`headers`: a mapping or an iterable of (name, value) pairs (str or bytes); cookies are read
    # from the `Cookie` header(s)." The canary's endpoints come from v1 Endpoints, ready only.
    router = ingresslib.Router(ingresslib.parse_manifests(shop(8080, extra=CANARY)))
    assert not router.route("GET", "shop.example.test", "/").canary  # type: ignore[union-attr]
    for _ in range(4):
        d = router.route("GET", "shop.example.test", "/", headers=headers)
        assert d is not None and d.canary is True, headers
        assert (d.service, d.port, d.endpoint) == ("web2", 7070, ("127.0.0.2", 7070))
    # A generator is an iterable of pairs too.
    d = router.route("GET", "shop.example.test", "/", headers=(p for p in [("X-Canary", "always")]))
    assert d is not None and d.canary


def test_headers_as_the_standard_librarys_header_mapping() -> None:
    # "`headers`: a mapping or an iterable of (name, value) pairs": http.client.HTTPMessage
    # (an http.server handler's self.headers) is a mapping-style object but no
    # collections.abc.Mapping; it was iterated as pairs (ValueError: too many values to unpack).
    import http.client
    import io

    router = ingresslib.Router(ingresslib.parse_manifests(shop(8080, extra=CANARY)))
    for raw, canary in ((b"X-Canary: always\r\n", True), (b"Cookie: a=1\r\nCookie: cc=always\r\n", True),
                        (b"X-Canary: never\r\nCookie: cc=always\r\n", False)):
        msg = http.client.parse_headers(io.BytesIO(raw + b"\r\n"))
        d = router.route("GET", "shop.example.test", "/", headers=msg)  # type: ignore[arg-type]
        assert d is not None and d.canary is canary, raw


def test_no_ready_endpoint_is_a_decision_with_endpoint_none() -> None:
    # "Only ready endpoints are used." "A route whose service has no ready endpoint returns a
    # `Decision` with `endpoint=None` (the proxy answers 503)."
    router = ingresslib.Router(ingresslib.parse_manifests(shop(8080, ready=False)))
    d = router.route("GET", "shop.example.test", "/")
    assert d is not None and d.endpoint is None and d.service == "web"


def test_endpoints_only_through_the_service_name_label() -> None:
    # "Endpoints come from EndpointSlices (label `kubernetes.io/service-name`)": a slice named
    # after the Service but without the label is not its slice.
    text = shop(8080).replace("labels: {kubernetes.io/service-name: web}", "labels: {app: web}")
    d = ingresslib.Router(ingresslib.parse_manifests(text)).route("GET", "shop.example.test", "/")
    assert d is not None and d.endpoint is None


@pytest.mark.parametrize("annotations", [
    "nginx.ingress.kubernetes.io/load-balance: ewma",          # two endpoints drawn at random
    "nginx.ingress.kubernetes.io/affinity: cookie",             # a random endpoint per new session
])
def test_seed_makes_random_choices_reproducible(annotations: str) -> None:
    # "`seed` makes random choices reproducible"
    eps = ", ".join(f"{{addresses: [127.0.0.{i}]}}" for i in range(1, 9))
    text = shop(8080).replace("endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]",
                              f"endpoints: [{eps}]").replace(
        "metadata: {name: shop, namespace: prod}",
        f"metadata: {{name: shop, namespace: prod, annotations: {{{annotations}}}}}")
    res = ingresslib.parse_manifests(text)

    def picks(seed: int) -> list[Any]:
        router = ingresslib.Router(res, seed=seed)
        out = []
        for _ in range(40):
            d = router.route("GET", "shop.example.test", "/")
            assert d is not None
            out.append((d.endpoint, d.set_cookie))
        return out

    assert picks(7) == picks(7)
    assert len({tuple(picks(s)) for s in range(5)}) > 1   # the choice is random: seeds differ


def test_route_raises_bad_request_as_match_does() -> None:
    # "`route` raises `BadRequestError` as `match` does."
    router = ingresslib.Router(ingresslib.parse_manifests(shop(8080)))
    for path in ("/../x", "/a%2Fb", "/%00"):
        with pytest.raises(ingresslib.BadRequestError) as matched:
            router.table.match("shop.example.test", path)
        with pytest.raises(ingresslib.BadRequestError) as routed:
            router.route("GET", "shop.example.test", path)
        assert routed.value.status_hint == matched.value.status_hint == 400, path


# --- "Command line": one-shot commands ------------------------------------------------------------


def run(*argv: str, module: bool = False, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ingresslib", *argv] if module else [SCRIPT, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=stdin)


def test_console_script_and_module_are_the_same_program() -> None:
    # "Installed as the console script `ingresslib` (and `python -m ingresslib`)"
    assert Path(SCRIPT).exists()
    a, b = run("--version"), run("--version", module=True)
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout == f"ingresslib {ingresslib.__version__}\n"


@pytest.mark.parametrize("module", [False, True])
def test_check_exit_0_or_2_with_every_error(tmp_path: Path, module: bool) -> None:
    # "ingresslib check -f PATH [-f PATH ...]  # validate; exit 0, or 2 with every error"
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(shop(8080))
    bad.write_text(INVALID_TWO_ERRORS)
    ok = run("check", "-f", str(good), module=module)
    assert ok.returncode == 0, ok.stderr
    folder = run("check", "-f", str(tmp_path), module=module)   # a folder too
    failed = run("check", "-f", str(good), "-f", str(bad), module=module)
    for proc in (folder, failed):
        assert proc.returncode == 2
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out
        assert "spec.rules[0].host" in out and "spec.rules[0].http.paths[0].path" in out, out


def test_explain_names_ingress_rule_and_backend(tmp_path: Path) -> None:
    # "ingresslib explain -f PATH [-f PATH ...] URL  # which ingress, rule and backend a URL hits"
    f, g = tmp_path / "a.yaml", tmp_path / "b.yaml"
    f.write_text(shop(8080))
    g.write_text(shop(8080).replace("shop", "other").replace("web", "w2"))
    proc = run("explain", "-f", str(f), "-f", str(g), "http://shop.example.test/exact")
    assert proc.returncode == 0, proc.stderr
    assert "prod/shop" in proc.stdout and "/exact" in proc.stdout and "Exact" in proc.stdout
    assert "web" in proc.stdout and "127.0.0.1:8080" in proc.stdout, proc.stdout
    proc = run("explain", "-f", str(f), "-f", str(g), "http://other.example.test/x")
    assert "prod/other" in proc.stdout and "w2" in proc.stdout, proc.stdout


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    # "exit 0, or 2": the commands' -f is required as the synopsis writes it.
    for argv in (("check",), ("explain", "http://a.test/"), ("serve",)):
        proc = run(*argv)
        assert proc.returncode == 2, (argv, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr


# --- "Command line": serve ------------------------------------------------------------------------


class Serve:
    """``ingresslib serve ...`` as a child process; stderr collected by a thread."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen([SCRIPT, "serve", *argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<EOF>")
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30, start: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    found = re.search(pattern, line)
                    if found:
                        return found
                if "<EOF>" in self.lines or time.monotonic() > deadline:
                    raise AssertionError(f"no {pattern!r} in {self.lines}")
                self._cond.wait(0.2)

    def ports(self, https: bool = False) -> tuple[int, int | None]:
        http = int(self.wait_for(r"^listening on http://127\.0\.0\.1:(\d+)$").group(1))
        tls = int(self.wait_for(r"^listening on https://127\.0\.0\.1:(\d+)$").group(1)) if https else None
        return http, tls

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._reader.join(10)
            assert self.proc.stderr is not None
            self.proc.stderr.close()


@pytest.fixture
def backend() -> Iterator[int]:
    """An HTTP/1.1 backend on 127.0.0.1 answering 200 ``backend <path>``."""

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = f"backend {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    # A short poll: shutdown() waits for serve_forever's next poll (0.5 s by default).
    t = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    t.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exchange(port: int, raw: bytes, *, timeout: float = 20,
             check_close: bool = False) -> tuple[int, bytes, bool]:
    """Send ``raw``; return the status, the bytes read, and whether the server closed (with
    ``check_close``, waiting up to 5 s for the close after the response)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        closed = False
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0]
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
        assert m, data[:200]
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        want = len(head) + 4 + (int(length.group(1)) if length else 0)
        while not closed and len(data) < want:
            chunk = s.recv(65536)
            closed = not chunk
            data += chunk
        if not closed and check_close:
            s.settimeout(5)
            try:
                closed = s.recv(1) == b""
            except socket.timeout:
                closed = False
        return int(m.group(1)), data, closed


def get(port: int, host: str, path: str = "/") -> tuple[int, bytes, bool]:
    return exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())


def test_serve_listening_line_real_port_and_statuses(tmp_path: Path, backend: int) -> None:
    # "`serve` prints one line `listening on http://HOST:PORT` ... to stderr once it accepts
    # connections; `--listen 127.0.0.1:0` picks a free port and prints the real one."
    # "Responses: no route -> 404; route with no ready endpoint -> 503; upstream unreachable
    # after retries -> 502; ... malformed request -> 400 (431 for oversized headers, 414 for an
    # oversized request line), then the connection is closed."
    m = tmp_path / "m.yaml"
    dead = closed_port()
    m.write_text(shop(backend) + "---\n" + shop(dead).replace("shop", "dead").replace("web", "gone")
                 + "---\n" + shop(backend, ready=False).replace("shop", "down").replace("web", "nope")
                 + "---\n" + shop(backend).replace("shop", "nosvc").split("---")[0].replace(
                     "service: {name: web,", "service: {name: missing,"))
    s = Serve("-f", str(m), "--listen", "127.0.0.1:0")
    try:
        port, _ = s.ports()
        assert port != 0
        assert sum(1 for ln in s.lines if ln.startswith("listening on ")) == 1
        status, data, _ = get(port, "shop.example.test", "/hello")
        assert status == 200 and data.endswith(b"backend /hello")
        assert get(port, "nobody.test")[0] == 404
        assert get(port, "down.example.test")[0] == 503
        assert get(port, "nosvc.example.test")[0] == 503     # no such Service: no endpoint
        assert get(port, "dead.example.test")[0] == 502
        for raw, want in ((b"GET / HTTP/1.1\r\nHost: shop.example.test\r\nBad Header\r\n\r\n", 400),
                          (b"GET / HTTP/1.1\r\nHost: shop.example.test\r\nX-Big: " + b"a" * 70000
                           + b"\r\n\r\n", 431),
                          (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: shop.example.test\r\n\r\n", 414)):
            status, data, closed = exchange(port, raw, check_close=True)
            assert (status, closed) == (want, True), (raw[:40], data[:200])
    finally:
        assert s.stop() == 0


def test_serve_504_on_upstream_timeout(tmp_path: Path) -> None:
    # "upstream timeout -> 504" (proxy-read-timeout from --config, in seconds as nginx reads it)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = silent.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    m, cfg = tmp_path / "m.yaml", tmp_path / "cm.yaml"
    m.write_text(shop(int(silent.getsockname()[1])))
    cfg.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n'
                   'data: {proxy-read-timeout: "1", proxy-next-upstream-tries: "1"}\n')
    s = Serve("-f", str(m), "--listen", "127.0.0.1:0", "--config", str(cfg))
    try:
        port, _ = s.ports()
        assert get(port, "shop.example.test")[0] == 504
    finally:
        assert s.stop() == 0
        silent.close()
        for c in held:
            c.close()


def test_serve_exits_2_with_every_validation_error(tmp_path: Path) -> None:
    # "exits 2 with the validation errors when the manifests are invalid at start-up"
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID_TWO_ERRORS)
    proc = subprocess.run([SCRIPT, "serve", "-f", str(bad), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "spec.rules[0].host" in proc.stderr and "spec.rules[0].http.paths[0].path" in proc.stderr
    assert "listening on" not in proc.stderr and "Traceback" not in proc.stderr


def test_serve_every_synopsis_option_parses(tmp_path: Path) -> None:
    # The synopsis's every option at once, with CONTRACT's own example values: the manifests are
    # invalid, so serve stops at the validation (exit 2 naming them), after argparse accepted all.
    bad, cfg = tmp_path / "bad.yaml", tmp_path / "cm.yaml"
    bad.write_text(INVALID_TWO_ERRORS)
    cfg.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {}\n")
    proc = subprocess.run([SCRIPT, "serve", "-f", str(bad), "-f", str(bad),
                           "--listen", "127.0.0.1:8080", "--tls-listen", "127.0.0.1:8443",
                           "--ingress-class", "NAME", "--controller", "NAME",
                           "--metrics-listen", "127.0.0.1:10254", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "spec.rules[0].host" in proc.stderr, proc.stderr
    assert "usage:" not in proc.stderr


def test_serve_reloads_and_keeps_the_last_good_table(tmp_path: Path, backend: int) -> None:
    # "reloads when the files change ... (a later invalid edit keeps the last good table and logs
    # the errors)."
    m = tmp_path / "m.yaml"
    m.write_text(shop(backend))
    s = Serve("-f", str(m), "--listen", "127.0.0.1:0", "--reload-interval", "0.2")
    try:
        port, _ = s.ports()
        assert get(port, "shop.example.test")[0] == 200

        def write(text: str) -> None:
            tmp = tmp_path / "m.tmp"
            tmp.write_text(text)
            os.replace(tmp, m)

        mark = len(s.lines)
        write(INVALID_TWO_ERRORS)
        s.wait_for(r"spec\.rules\[0\]\.http\.paths\[0\]\.path", start=mark)
        assert get(port, "shop.example.test")[0] == 200     # the last good table
        write(shop(backend).replace("shop.example.test", "moved.test"))
        deadline = time.monotonic() + 30
        while get(port, "moved.test")[0] != 200:
            assert time.monotonic() < deadline, s.lines
            time.sleep(0.2)
        assert get(port, "shop.example.test")[0] == 404
        # "prints one line": reloads print no second one.
        assert sum(1 for ln in s.lines if ln.startswith("listening on ")) == 1, s.lines
    finally:
        assert s.stop() == 0


def test_serve_class_filters(tmp_path: Path, backend: int) -> None:
    # "[--ingress-class NAME] [--controller NAME]" as RouteTable.build reads them.
    m = tmp_path / "m.yaml"
    m.write_text(shop(backend).replace("spec:\n  rules:", "spec:\n  ingressClassName: nginx\n  rules:", 1)
                 + "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n"
                   "spec: {controller: k8s.io/ingress-nginx}\n")
    for args, want in ((("--ingress-class", "nginx"), 200), (("--ingress-class", "other"), 404),
                       (("--controller", "k8s.io/ingress-nginx"), 200), (("--controller", "x.io/y"), 404)):
        s = Serve("-f", str(m), "--listen", "127.0.0.1:0", *args)
        try:
            port, _ = s.ports()
            assert get(port, "shop.example.test")[0] == want, args
        finally:
            assert s.stop() == 0


def _cert(tmp: Path, host: str) -> tuple[str, str]:
    """A self-signed certificate for ``host`` (PEM cert, PEM key), made with openssl."""
    key, crt = tmp / f"{host}.key", tmp / f"{host}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt.read_text(), key.read_text()


def test_serve_tls_certificate_by_sni_and_metrics(tmp_path: Path, backend: int) -> None:
    # "HTTPS on `--tls-listen` with certificates from the TLS Secrets named by the Ingresses,
    # chosen by SNI"; "listening on http://HOST:PORT (and https://...)"; --metrics-listen.
    import base64

    docs = []
    for name in ("a", "b"):
        host = f"{name}.example.test"
        crt, key = _cert(tmp_path, host)
        docs.append(shop(backend).replace("shop", name).replace("web", f"web{name}").replace(
            "spec:\n  rules:", f"spec:\n  tls: [{{hosts: [{host}], secretName: {name}-tls}}]\n  rules:", 1))
        docs.append(json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                "metadata": {"name": f"{name}-tls", "namespace": "prod"},
                                "data": {"tls.crt": base64.b64encode(crt.encode()).decode(),
                                         "tls.key": base64.b64encode(key.encode()).decode()}}) + "\n")
    m = tmp_path / "m.yaml"
    m.write_text("---\n".join(docs))
    s = Serve("-f", str(m), "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
              "--metrics-listen", "127.0.0.1:0")
    try:
        port, tls_port = s.ports(https=True)
        assert tls_port and tls_port != port
        assert sum(1 for ln in s.lines if ln.startswith("listening on ")) == 2, s.lines
        for name in ("a", "b"):
            host = f"{name}.example.test"
            ctx = ssl.create_default_context(cafile=str(tmp_path / f"{host}.crt"))
            with socket.create_connection(("127.0.0.1", tls_port), timeout=20) as raw, \
                    ctx.wrap_socket(raw, server_hostname=host) as tls:
                cert = tls.getpeercert()
                assert cert is not None
                assert ("commonName", host) in [x for rdn in cert["subject"] for x in rdn]
                tls.sendall(f"GET /t HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"backend /t"), data[:200]
        metrics = s.wait_for(r"^metrics on http://127\.0\.0\.1:(\d+)/metrics$")
        status, data, _ = get(int(metrics.group(1)), "localhost", "/metrics")
        assert status == 200 and b"nginx_ingress_controller_requests" in data
    finally:
        assert s.stop() == 0


#: CONTRACT's ConfigMap keys with values ingress-nginx's documentation uses.
CONFIG_KEYS = {
    "use-forwarded-headers": "true", "compute-full-forwarded-for": "true",
    "forwarded-for-header": "X-Forwarded-For", "proxy-real-ip-cidr": "10.0.0.0/8,192.168.0.0/16",
    "enable-real-ip": "true", "generate-request-id": "true", "ssl-redirect": "false", "hsts": "true",
    "hsts-max-age": "31536000", "hsts-include-subdomains": "false", "proxy-connect-timeout": "5",
    "proxy-read-timeout": "60", "proxy-send-timeout": "60", "proxy-next-upstream": "error timeout http_502",
    "proxy-next-upstream-tries": "3", "proxy-body-size": "8m", "keep-alive": "75",
    "keep-alive-requests": "1000", "upstream-keepalive-connections": "320",
    "large-client-header-buffers": "4 8k", "enable-underscores-in-headers": "true",
    "load-balance": "ewma",
}


def _configmap(data: dict[str, str]) -> str:
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: " + json.dumps(data) + "\n"


def test_serve_config_keys_unknown_warned_invalid_exit_2(tmp_path: Path, backend: int) -> None:
    # "`--config PATH` takes a `v1` ConfigMap manifest whose `data` keys use ingress-nginx's
    # ConfigMap names ... (at least ...); unknown keys are warned about, invalid values rejected
    # with exit 2."
    m, cfg = tmp_path / "m.yaml", tmp_path / "cm.yaml"
    m.write_text(shop(backend))
    cfg.write_text(_configmap({**CONFIG_KEYS, "no-such-key": "1"}))
    s = Serve("-f", str(m), "--listen", "127.0.0.1:0", "--config", str(cfg))
    try:
        port, _ = s.ports()
        warned = [ln for ln in s.lines if "no-such-key" in ln]
        assert len(warned) == 1, s.lines
        for key in CONFIG_KEYS:   # the contract's keys are known: none is warned about
            assert not any(key in ln for ln in s.lines if ln not in warned), (key, s.lines)
        assert get(port, "shop.example.test")[0] == 200
    finally:
        assert s.stop() == 0
    for key, bad in (("proxy-read-timeout", "soon"), ("keep-alive-requests", "-1"), ("hsts", "maybe"),
                     ("proxy-body-size", "8q"), ("load-balance", "fastest")):
        cfg.write_text(_configmap({key: bad}))
        proc = subprocess.run([SCRIPT, "serve", "-f", str(m), "--listen", "127.0.0.1:0", "--config",
                               str(cfg)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and key in proc.stderr, (key, proc.returncode, proc.stderr)
        assert "listening on" not in proc.stderr


def test_python_m_ingresslib_serve(tmp_path: Path, backend: int) -> None:
    # "(and `python -m ingresslib`)": the module form serves too.
    m = tmp_path / "m.yaml"
    m.write_text(shop(backend))
    proc = subprocess.Popen([sys.executable, "-m", "ingresslib", "serve", "-f", str(m), "--listen",
                             "127.0.0.1:0"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = ""
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        while ready and not line.startswith("listening on "):
            line = proc.stderr.readline()
            if not line:
                break
        found = re.match(r"listening on http://127\.0\.0\.1:(\d+)$", line.strip())
        assert found, line
        assert get(int(found.group(1)), "shop.example.test")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        assert proc.stderr is not None
        proc.stderr.close()
        assert code == 0



def test_config_keys_are_keyword_arguments_of_the_server_api() -> None:
    # "The same settings are keyword arguments of the Python server API": each key, snake_case,
    # given to ingresslib.proxy.ProxyServer (README "Embedding the proxy") with a value other
    # than its default, reaches the server's settings (load-balance: its router).
    import asyncio

    from ingresslib.proxy import ProxyServer

    values: dict[str, Any] = {
        "use_forwarded_headers": True, "compute_full_forwarded_for": True,
        "forwarded_for_header": "X-Client", "proxy_real_ip_cidr": ("10.0.0.0/8",),
        "enable_real_ip": True, "generate_request_id": False, "ssl_redirect": False, "hsts": False,
        "hsts_max_age": 100, "hsts_include_subdomains": False, "proxy_connect_timeout": 7.0,
        "proxy_read_timeout": 8.0, "proxy_send_timeout": 9.0,
        "proxy_next_upstream": ("error", "timeout", "http_502"), "proxy_next_upstream_tries": 2,
        "proxy_body_size": 2048, "keep_alive": 30.0, "keep_alive_requests": 10,
        "upstream_keepalive_connections": 5, "large_client_header_buffers": "4 16k",
        "enable_underscores_in_headers": True, "load_balance": "ewma",
    }
    assert sorted(values) == sorted(k.replace("-", "_") for k in CONFIG_KEYS)

    async def build() -> None:
        router = ingresslib.Router(ingresslib.parse_manifests(shop(8080)))
        for kw, value in values.items():
            server = ProxyServer(router, **{kw: value})
            if kw == "load_balance":
                assert server.proxy.router.load_balance == value
            else:
                assert getattr(server.proxy.settings, kw) == value, kw

    asyncio.run(build())


def test_serve_retries_another_endpoint_then_502(tmp_path: Path, backend: int) -> None:
    # "upstream unreachable after retries -> 502": with one dead and one live endpoint every
    # request is answered by the live one; with only dead ones, 502.
    m = tmp_path / "m.yaml"
    dead = closed_port()
    second = (f"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
              f"metadata: {{name: web-2, namespace: prod, labels: {{kubernetes.io/service-name: web}}}}\n"
              f"addressType: IPv4\nports: [{{name: http, port: {dead}}}]\n"
              f"endpoints: [{{addresses: [127.0.0.1]}}]\n")
    m.write_text(shop(backend) + second)
    s = Serve("-f", str(m), "--listen", "127.0.0.1:0")
    try:
        port, _ = s.ports()
        assert [get(port, "shop.example.test", f"/{i}")[0] for i in range(6)] == [200] * 6
    finally:
        assert s.stop() == 0


def test_serve_reloads_a_folder_when_a_file_is_added(tmp_path: Path, backend: int) -> None:
    # "reloads when the files change": `-f PATH` is a file or a folder; a file added to the folder
    # is a change.
    folder = tmp_path / "deploy"
    folder.mkdir()
    (folder / "a.yaml").write_text(shop(backend))
    s = Serve("-f", str(folder), "--listen", "127.0.0.1:0", "--reload-interval", "0.2")
    try:
        port, _ = s.ports()
        assert get(port, "new.test")[0] == 404
        tmp = tmp_path / "b.tmp"
        tmp.write_text(shop(backend).replace("shop", "new").replace("new.example.test", "new.test"))
        os.replace(tmp, folder / "b.yaml")
        deadline = time.monotonic() + 30
        while get(port, "new.test")[0] != 200:
            assert time.monotonic() < deadline, s.lines
            time.sleep(0.2)
        assert get(port, "shop.example.test")[0] == 200
    finally:
        assert s.stop() == 0


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_demo_as_written() -> None:
    # "ingresslib demo  # the embedded default: see README": as written it listens on
    # 127.0.0.1:8080 and :8443 (README); when another program holds those ports, the same
    # command with free ports.
    extra = [] if _free(8080) and _free(8443) else ["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"]
    proc = subprocess.Popen([SCRIPT, "demo", *extra], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    s = Serve.__new__(Serve)
    s.proc, s.lines, s._cond = proc, [], threading.Condition()
    s._reader = threading.Thread(target=s._read, daemon=True)
    s._reader.start()
    try:
        port, tls_port = s.ports(https=True)
        if not extra:
            assert (port, tls_port) == (8080, 8443)
        status, data, _ = get(port, "example.test", "/guest")
        assert status == 200 and b"guest" in data, data[-300:]
    finally:
        assert s.stop() == 0


def test_serve_listen_default_is_the_synopsis_value(tmp_path: Path, backend: int) -> None:
    # "[--listen 127.0.0.1:8080]": without --listen, serve listens there (when another program
    # holds the port, serve's refusal names that address: exit 1, as README says).
    m = tmp_path / "m.yaml"
    m.write_text(shop(backend))
    if not _free(8080):
        proc = subprocess.run([SCRIPT, "serve", "-f", str(m)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "--listen 127.0.0.1:8080" in proc.stderr, proc.stderr
        return
    s = Serve("-f", str(m))
    try:
        port, _ = s.ports()
        assert port == 8080
        assert get(port, "shop.example.test")[0] == 200
    finally:
        assert s.stop() == 0
