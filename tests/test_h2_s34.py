"""Session 34, h2: ``RouteTable.match`` / ``Router.route`` refuse a Host the proxy refuses.

They checked the path (400) but not the host: ``"a b.example.test"`` reached the
``*.example.test`` rules, ``"example.test:abc"`` was routed as ``example.test``, ``"x\\r\\nevil"``
reached the host-less rules, while the proxy and IngressASGI answer those 400 before routing
(``proxy._headers.check_host``: nginx's ``ngx_http_validate_host``, SEMANTICS §9 "bad Host
values"). Now one rule (``_normalize.check_host``) serves both, and both matchers apply it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ingresslib
from ingresslib import _match_py
from ingresslib._errors import BadRequestError
from ingresslib import _normalize
from ingresslib.proxy._errors import RemoteProxyError
from ingresslib.proxy._headers import check_host as proxy_check_host

from _matchers import MATCHER_PARAMS, required


@pytest.fixture(params=MATCHER_PARAMS)
def matcher_class(request: pytest.FixtureRequest) -> Any:
    return required(request.param)


#: One group per kind of host lookup: exact, wildcard, host-less.
GROUPS: list[_match_py.HostGroup] = [
    ("example.test", {}, {"": "exact host"}, None),
    ("*.example.test", {}, {"": "wildcard"}, None),
    (None, {}, {"": "host-less"}, None),
]

#: Hosts the proxy answers 400, and the group each was routed to before.
BAD_HOSTS = [
    "a b.example.test",        # a space: was the wildcard's
    "example.test:abc",        # a port that is no number: was example.test's
    "x\r\nevil",               # CR LF: was the host-less rules'
    "Example.test:99999",      # port over 65535 (upper case: the compiled slow path)
    "example.test:0",
    "example.test:123456",
    "example.test:",           # ":" with no port
    "a..b",                    # an empty label ([a-z.] only: the compiled fast path's scan)
    "x.a..example.test",
    "b..example.test",
    "example.test..",
    ".",                       # nothing once the trailing dot goes (ngx_http_validate_host)
    ".:80",
    ":80",                     # a port with no host
    "user@example.test",
    "example.test/x",
    "ex\\ample.test",
    "b\u00e4r.example.test",   # non-ASCII: the proxy's Host rule takes ASCII only
    "\u212aoo.example.test",   # Kelvin sign
    "[::1",                    # an unclosed IPv6 literal
    "[::1]x",
    "exa\x00mple.test",
    "example.test\t",
    "A..B:80",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_lookup_refuses_a_host_the_proxy_refuses(matcher_class: Any, host: str) -> None:
    m = matcher_class(GROUPS, "matcher default")
    with pytest.raises(BadRequestError) as info:
        m.lookup(host, "/")
    assert info.value.status_hint == 400
    # The message names the host (quoted: it is remote input).
    assert repr(host) in str(info.value)
    # The very rule of the proxy's check_host, which refuses it too.
    with pytest.raises(RemoteProxyError):
        proxy_check_host(host.encode("utf-8"))


GOOD_HOSTS = [
    ("", "host-less"),                     # no host: the host-less rules, as before
    ("example.test", "exact host"),
    ("Example.Test:8080", "exact host"),
    ("example.test.", "exact host"),
    ("example.test.:443", "exact host"),
    ("x.example.test", "wildcard"),
    ("X.Example.Test:1", "wildcard"),
    ("x.example.test:65535", "wildcard"),
    ("x.example.test:08080", "wildcard"),   # 1-5 digits, 8080: what the proxy takes
    ("a.b.example.test", "host-less"),
    (".example.test", "host-less"),         # no label before the dot: no wildcard's
    ("[::1]", "host-less"),
    ("[::1]:8080", "host-less"),
    ("127.0.0.1:80", "host-less"),
    ("a-b_c~d", "host-less"),
    ("other.test", "host-less"),
    ("x" * 300 + ".example.test", "wildcard"),   # longer than the compiled buffer
]


@pytest.mark.parametrize(("host", "expected"), GOOD_HOSTS)
def test_lookup_routes_a_host_the_proxy_takes(matcher_class: Any, host: str, expected: str) -> None:
    proxy_check_host(host.encode("ascii"))  # the proxy takes it
    assert matcher_class(GROUPS, "matcher default").lookup(host, "/") == expected


def test_a_bad_host_is_refused_before_a_bad_path_in_both(matcher_class: Any) -> None:
    # Host first (SEMANTICS §4 "Host first, then path"): both matchers give the same error.
    with pytest.raises(BadRequestError, match="Host"):
        matcher_class(GROUPS).lookup("a b", "/../x")
    with pytest.raises(BadRequestError, match="above the root"):
        matcher_class(GROUPS).lookup("a.b", "/../x")


def test_check_host_is_the_core_rule() -> None:
    check_host = _normalize.check_host
    check_host("")  # no host
    check_host("Example.Test:8080")
    with pytest.raises(BadRequestError) as info:
        check_host("a b")
    assert info.value.status_hint == 400 and str(info.value) == "invalid Host header: 'a b'"
    with pytest.raises(BadRequestError, match="invalid port in Host header: 'a:0'"):
        check_host("a:0")
    with pytest.raises(BadRequestError, match="empty host in Host header"):
        check_host(".")
    # A long hostile host is cut in the message, never echoed whole.
    with pytest.raises(BadRequestError) as info:
        check_host("a " * 1000)
    assert len(str(info.value)) < 120


# Random hosts with odd bytes, around the rule hosts: the matchers raise exactly when the
# proxy's check_host refuses (latin-1: the proxy's bytes read as the ASGI scope and explain do).
_ODD = "aZ09-._~:[]@/\\ %!$&'()*+,;=\r\n\t\x00\x7f\x80\xe4\xff"
_HOST_TEXT = st.text(alphabet=_ODD, max_size=12)
_HOSTS = st.one_of(
    _HOST_TEXT,
    st.builds(lambda a, h, b: a + h + b, _HOST_TEXT,
              st.sampled_from(["example.test", "x.example.test", "EXAMPLE.test", "[::1]"]), _HOST_TEXT),
    st.builds(lambda h, p: f"{h}:{p}", st.sampled_from(["example.test", "x.example.test", "a"]),
              st.integers(-1, 10 ** 6).map(str) | st.text(alphabet="0123456789a ", max_size=7)),
)


@given(host=_HOSTS)
def test_lookup_raises_exactly_when_the_proxy_refuses(host: str) -> None:
    try:
        proxy_check_host(host.encode("latin-1"))
        refused = False
    except RemoteProxyError:
        refused = True
    for p in MATCHER_PARAMS:
        cls = required(p.values[0]) if p.id == "cython" else p.values[0]
        try:
            cls(GROUPS, "d").lookup(host, "/")
            raised = False
        except BadRequestError as exc:
            assert exc.status_hint == 400
            raised = True
        assert raised == refused, (cls.__module__, host)


# -- the public API: RouteTable.match and Router.route ---------------------------------------

_MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules:
  - host: example.test
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
  - host: "*.example.test"
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
  - http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
"""


def test_route_table_match_refuses_a_bad_host(matcher_class: Any) -> None:
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(_MANIFEST),
                                        matcher_class=matcher_class)
    for host in ("a b.example.test", "example.test:abc", "x\r\nevil"):
        with pytest.raises(BadRequestError) as info:
            table.match(host, "/")
        assert info.value.status_hint == 400
    m = table.match("Example.test:8080", "/")
    assert m is not None and m.host == "example.test"


def test_router_route_refuses_a_bad_host() -> None:
    router = ingresslib.Router(ingresslib.parse_manifests(_MANIFEST), seed=1)
    for host in ("a b.example.test", "example.test:abc", "x\r\nevil", "a..b"):
        with pytest.raises(BadRequestError) as info:
            router.route("GET", host, "/")
        assert info.value.status_hint == 400
    d = router.route("GET", "x.example.test:8080", "/")
    assert d is not None and d.endpoint == ("10.0.0.1", 8080)


def test_route_table_explain_reports_a_bad_host_as_400() -> None:
    table = ingresslib.RouteTable.build(ingresslib.parse_manifests(_MANIFEST))
    out = table.explain("example.test:abc", "/")
    assert out["status"] == 400 and out["match"] is None
    assert out["reason"] == "rejected: invalid Host header: 'example.test:abc'"


def test_explain_cli_a_bad_host_is_a_clear_400(tmp_path: Path) -> None:
    # explain refuses the Host as the proxy does before it routes (_refused_before_routing);
    # the table's own refusal now backs it: a 400 with its reason, never a traceback.
    manifest = tmp_path / "web.yaml"
    manifest.write_text(_MANIFEST)
    for args in (["http://a..b/"], ["-H", "Host: x.example.test:abc", "/"],
                 ["-H", "Host: a b.example.test", "/"]):
        p = subprocess.run([sys.executable, "-m", "ingresslib", "explain", "-f", str(manifest),
                            "--output", "json", *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        doc = json.loads(p.stdout)
        assert doc["status"] == 400 and doc["match"] is None, doc
        assert doc["reason"].startswith("rejected: invalid Host header"), doc
