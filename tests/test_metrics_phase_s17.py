"""Metrics: requests nginx answers before their location runs (``RequestRecord.phase``,
session 17).

ingress-nginx counts a request in ``monitor.call()``, which nginx.tmpl puts in the
``log_by_lua_block`` of each ``location`` only (none at the ``http`` or ``server`` level, none
in the from-to-www twin's server). So a request refused while its head was read, the twin's
redirect and app-root's 302 (the server block's ``if ($uri = /) { return 302 ... }``) are
never counted; the 413 of a Content-Length (ngx_http_core_find_config_phase, after the location
is chosen, before its rewrite phase) is counted by that location's log phase with the
variables its rewrite phase would have set (``$namespace``, ``$ingress_name``,
``$service_name``, ``$location_path``, ``$proxy_alternative_upstream_name``) unset: "".
"""

from __future__ import annotations

import pytest

from ingresslib._metrics import Metrics

from _proxy_harness import ProxyPair, Route
from _records import rec

P = "nginx_ingress_controller"
A = "nginx.ingress.kubernetes.io/"


def _requests(m: Metrics) -> dict[str, str]:
    """``{labels: value}`` of the ``_requests`` counter."""
    out = {}
    for line in m.render().decode().splitlines():
        if line.startswith(f"{P}_requests{{"):
            labels, _, value = line[len(P) + 10:].rpartition("} ")
            out[labels] = value
    return out


def _labels(**kw: str) -> str:
    base = dict(canary="", host="foo.test", ingress="", method="GET", namespace="", path="",
                service="", status="200")
    base.update(kw)
    return ",".join(f'{k}="{v}"' for k, v in sorted(base.items()))


def test_a_413_for_the_content_length_is_counted_without_the_location_labels() -> None:
    # Before: counted under ingress="web", namespace="shop", service="web", path="/api".
    m = Metrics()
    m.observe(rec(method="POST", status=413, phase="server", upstreams=(),
                  upstream_connect=None, upstream_first_byte=None))
    assert _requests(m) == {_labels(method="POST", status="413"): "1.0"}


def test_a_canary_413_has_no_canary_label_either() -> None:
    # $proxy_alternative_upstream_name is set in the location's rewrite phase as well.
    m = Metrics()
    m.observe(rec(status=413, phase="server", canary=True, service="web-canary",
                  upstreams=(), upstream_connect=None, upstream_first_byte=None))
    assert _requests(m) == {_labels(status="413"): "1.0"}


def test_the_413_keeps_the_host_filter() -> None:
    # socket.go skips hosts not served before looking at any other label.
    m = Metrics()
    m.set_hosts({"other.test"})
    m.observe(rec(status=413, phase="server"))
    assert _requests(m) == {}
    m.set_hosts({"foo.test"})
    m.observe(rec(status=413, phase="server"))
    assert _requests(m) == {_labels(status="413"): "1.0"}


def test_app_root_302_is_not_counted() -> None:
    # The server block's rewrite phase answers: no location's log phase runs. Before: counted
    # under the rule's Ingress (routed) or with empty labels (no rule for "/").
    m = Metrics()
    m.observe(rec(path="/", rule_path="/", status=302, phase="server"))
    m.observe(rec(path="/", rule_path=None, ingress=None, service=None, namespace=None,
                  status=302, phase="server"))
    assert _requests(m) == {}


@pytest.mark.parametrize("status", [400, 405, 408, 414, 431])
def test_a_head_refusal_is_not_counted(status: int) -> None:
    # Refused while the head was read: the server's configuration, no log_by_lua_block.
    # Before: counted with empty labels.
    m = Metrics()
    m.observe(rec(status=status, phase="head", ingress=None, service=None, namespace=None,
                  rule_path=None, upstreams=()))
    assert _requests(m) == {}


def test_the_www_twins_redirect_is_not_counted() -> None:
    # nginx.tmpl's RedirectServers: "server_name {{ $redirect.From }}; ... return {{
    # $all.Cfg.HTTPRedirectCode }} $redirect_to;", a server without any location.
    m = Metrics()
    m.observe(rec(host="www.foo.test", status=308, phase="head", ingress=None, service=None,
                  namespace=None, rule_path=None, upstreams=()))
    assert _requests(m) == {}


def test_location_and_unknown_phases_keep_their_labels() -> None:
    # Everything the location's rewrite phase saw, and records built without a phase, are
    # labelled as before.
    for phase in ("location", None):
        m = Metrics()
        m.observe(rec(phase=phase))
        m.observe(rec(phase=phase, status=404, ingress=None, service=None, namespace=None,
                      rule_path=None))
        assert _requests(m) == {
            _labels(ingress="web", namespace="shop", service="web", path="/api"): "1.0",
            _labels(status="404", host=""): "1.0",
        }


# --- records from the proxy core ----------------------------------------------------------------


def _observed(pair: ProxyPair) -> dict[str, str]:
    m = Metrics()
    for r in pair.records:
        m.observe(r)
    return _requests(m)


def test_core_413_for_the_content_length() -> None:
    pair = ProxyPair([Route(path="/api", host="foo.test",
                            annotations={A + "proxy-body-size": "10"})])
    assert pair.send(b"POST /api/x HTTP/1.1\r\nHost: foo.test\r\nContent-Length: 100\r\n\r\n"
                     ).startswith(b"HTTP/1.1 413 ")
    assert _observed(pair) == {_labels(method="POST", status="413"): "1.0"}


def test_core_app_root_302() -> None:
    pair = ProxyPair([Route(path="/", host="foo.test", annotations={A + "app-root": "/app"})])
    assert pair.send(b"GET / HTTP/1.1\r\nHost: foo.test\r\n\r\n").startswith(b"HTTP/1.1 302 ")
    pair.send(b"GET /x HTTP/1.1\r\nHost: foo.test\r\n\r\n")  # proxied: counted as ever
    assert _observed(pair) == {
        _labels(ingress="web", namespace="default", service="web", path="/"): "1.0"}


def test_core_head_refusal() -> None:
    pair = ProxyPair([Route(path="/api", host="foo.test")])
    answer = pair.send(b"GET /api/x HTTP/1.1\r\nHost: foo.test\r\nX-Big: " + b"a" * 70000
                       + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert [r.status for r in pair.records] == [431]
    assert _observed(pair) == {}
